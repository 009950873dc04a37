"""Tokenizers in Hugging Face format: trained WordPiece for the demo, or the
teacher's own tokenizer; both saved as tokenizer.json, tokenizer_config.json
and vocab.txt so `AutoTokenizer.from_pretrained(dir)` and BERT tools load them."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from kdbudget.data.wordpiece import count_words, learn_vocabulary
from kdbudget.io import atomic_dir

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class TokenizerError(ValueError):
    """A tokenizer is unusable for BERT pretraining or mismatches a model."""


def train_wordpiece(texts: Iterable[str], *, vocab_size: int, lowercase: bool, min_frequency: int):
    """Train a BERT-style WordPiece tokenizer and wrap it for `transformers`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase, clean_text=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # Our own learner, not tokenizers' WordPieceTrainer: that one keeps different
    # tokens from run to run (see kdbudget.data.wordpiece).
    vocab = learn_vocabulary(count_words(texts, normalizer, pre_tokenizer), vocab_size=vocab_size,
                             min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS)
    if len(vocab) > vocab_size:
        # Every character seen is kept (as BERT's WordPiece does), so none becomes [UNK].
        log.warning("the vocabulary has %d tokens, more than tokenizer.vocab_size=%d: the special tokens and "
                    "the alphabet (every character seen, alone and as a ## continuation) alone exceed it, and "
                    "all are kept", len(vocab), vocab_size)
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=lowercase, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def vocabulary(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise TokenizerError("the tokenizer's vocabulary ids are not contiguous from 0")
    return [token for token, _ in by_id]


def vocab_hash(tokenizer) -> str:
    """SHA-256 of the vocabulary in id order: equal hashes mean equal token ids."""
    return hashlib.sha256("\n".join(vocabulary(tokenizer)).encode("utf-8")).hexdigest()


def check_bert_tokenizer(tokenizer, where: str | Path) -> None:
    """Refuse tokenizers that cannot feed BERT's masked-LM packing."""
    if not getattr(tokenizer, "is_fast", False):
        raise TokenizerError(f"{where}: a fast tokenizer (tokenizer.json) is required")
    for role in ("cls_token", "sep_token", "mask_token", "pad_token"):
        if getattr(tokenizer, role, None) is None:
            raise TokenizerError(f"{where}: the tokenizer defines no {role}")


def check_vocab_matches_model(tokens: int, model_dir: str | Path) -> None:
    """A tokenizer of ``tokens`` tokens beside a model config (a teacher directory) must fit its embedding."""
    config_path = Path(model_dir) / "config.json"
    if not config_path.is_file():
        return
    model_vocab = json.loads(config_path.read_text(encoding="utf-8")).get("vocab_size")
    if model_vocab is not None and model_vocab != tokens:
        raise TokenizerError(
            f"tokenizer in {model_dir} has {tokens} tokens but the model's {config_path} has "
            f"vocab_size {model_vocab}: the tokenizer does not match the teacher's vocabulary"
        )


def stored_vocab_size(tokenizer_dir: str | Path) -> int | None:
    """Token count of a saved fast tokenizer, read from tokenizer.json without
    importing transformers (cheap enough for workflow start-up checks)."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    ids = set((data.get("model") or {}).get("vocab", {}).values())
    ids.update(token["id"] for token in data.get("added_tokens", []))
    return len(ids)


def check_tokenizer_dir(tokenizer_dir: str | Path) -> None:
    """Fail early when a tokenizer directory beside a model config disagrees with it."""
    tokenizer_dir = Path(tokenizer_dir)
    if not tokenizer_dir.is_dir():
        raise TokenizerError(f"tokenizer directory not found: {tokenizer_dir}")
    size = stored_vocab_size(tokenizer_dir)
    if size is not None:
        check_vocab_matches_model(size, tokenizer_dir)


def save_tokenizer(tokenizer, out_dir: str | Path) -> None:
    """Save atomically in Hugging Face format, plus vocab.txt (transformers 5 omits it)."""
    with atomic_dir(out_dir) as tmp:
        tokenizer.save_pretrained(tmp)
        (tmp / "vocab.txt").write_text("\n".join(vocabulary(tokenizer)) + "\n", encoding="utf-8")


def load_tokenizer(path: str | Path):
    """Load a local tokenizer directory (never the network)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise TokenizerError(f"tokenizer directory not found: {path}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise TokenizerError(f"cannot load a tokenizer from {path}: {err}") from None
    check_bert_tokenizer(tokenizer, path)
    return tokenizer


def copy_tokenizer(src_dir: str | Path, out_dir: str | Path) -> dict:
    """Validate a user's (or fetched) tokenizer and store it with the data."""
    tokenizer = load_tokenizer(src_dir)
    check_vocab_matches_model(len(tokenizer), src_dir)
    save_tokenizer(tokenizer, out_dir)
    return {"vocab_size": len(tokenizer), "vocab_sha256": vocab_hash(tokenizer)}


def document_texts(paths: Iterable[str | Path]) -> Iterator[str]:
    from kdbudget.data.documents import read_documents

    for path in paths:
        for doc in read_documents(path):
            yield doc["text"]
