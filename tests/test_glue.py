"""GLUE: the official-layout loader, metrics against hand-computed values, best-of-grid selection, and fine-tuning
a tiny random model end to end."""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kdbudget.glue import (
    TASKS,
    GlueFormatError,
    MetricError,
    MissingCellError,
    dev_metrics,
    load_task,
    main_metric,
    majority_baseline,
    render_table,
    select_best,
    summarize,
    task_metrics,
)
from kdbudget.glue import metrics as M

# --- hand-written files in the official layout ------------------------------------------------------------------

MNLI_TRAIN_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                     "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER.replace("label1\t", "label1\tlabel2\tlabel3\tlabel4\tlabel5\t")
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"


def mnli_line(i: int, a: str, b: str, label: str, dev: bool = False) -> str:
    labels = [label] * (5 if dev else 1)
    return "\t".join([str(i), "31193", f"{i}n", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b, *labels,
                      label])


# For each task: files (name -> text) and the examples expected from the first file (text_a, text_b, label).
LAYOUTS = {
    "cola": ({"train.tsv": "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n"},
             [("Our friends won't buy this analysis.", None, 1), ("They drank the pub.", None, 0)]),
    "sst2": ({"train.tsv": "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n"
                           "unflinchingly bleak\t0\n"},
             [("it 's a charming and often affecting journey . ", None, 1), ("unflinchingly bleak", None, 0)]),
    "mrpc": ({"train.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"  # a byte-order mark, as MSR's
                           "1\t702876\t702977\tAmrozi accused his brother .\t"
                           "Referring to him , Amrozi accused him .\n"},
             [("Amrozi accused his brother .", "Referring to him , Amrozi accused him .", 1)]),
    "qqp": ({"train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                          "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of math?\t0\n"},
            [("How is the life of a math student?", "Which level of math?", 0)]),
    "stsb": ({"train.tsv": f"{STSB_HEADER}\n0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\t"
                           "A plane is taking off.\tAn air plane is taking off.\t5.000\n"},
             [("A plane is taking off.", "An air plane is taking off.", 5.0)]),
    "mnli": ({"train.tsv": "\n".join([MNLI_TRAIN_HEADER, mnli_line(0, 'He said "yes".', "He agreed.", "entailment"),
                                       mnli_line(1, '"Well, she began', "She was silent.", "contradiction")]) + "\n",
              "dev_matched.tsv": "\n".join([MNLI_DEV_HEADER, mnli_line(5, "A dog runs.", "An animal runs.", "neutral",
                                                                       dev=True)]) + "\n",
              "dev_mismatched.tsv": "\n".join([MNLI_DEV_HEADER, mnli_line(6, "It rains.", "It is dry.", "contradiction",
                                                                          dev=True)]) + "\n"},
             [('He said "yes".', "He agreed.", 0), ('"Well, she began', "She was silent.", 2)]),
    "qnli": ({"train.tsv": "index\tquestion\tsentence\tlabel\n0\tWhen did it open?\tIt opened in 1950.\tentailment\n"},
             [("When did it open?", "It opened in 1950.", 0)]),
    "rte": ({"train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tNo Weapons of Mass Destruction Found in Iraq Yet."
                          "\tWeapons of Mass Destruction Found in Iraq.\tnot_entailment\n"},
            [("No Weapons of Mass Destruction Found in Iraq Yet.", "Weapons of Mass Destruction Found in Iraq.", 1)]),
}


def write_layout(glue_dir: Path, task: str, files: dict[str, str]) -> Path:
    folder = glue_dir / TASKS[task].dir_name
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    for _, dev_file in TASKS[task].dev_files:  # a dev file equal to train unless given
        if dev_file not in files:
            (folder / dev_file).write_text(files["train.tsv"], encoding="utf-8")
    return folder


@pytest.mark.parametrize("task", sorted(LAYOUTS))
def test_loader_reads_each_official_layout(tmp_path, task):
    files, expected = LAYOUTS[task]
    write_layout(tmp_path, task, files)
    data = load_task(tmp_path, task)
    assert [(e.text_a, e.text_b, e.label) for e in data.train] == expected
    assert set(data.dev) == set(TASKS[task].dev_splits)
    assert all(count == 0 for count in data.malformed.values())
    if task == "mnli":
        assert [e.label for e in data.dev["matched"]] == [1]
        assert [e.label for e in data.dev["mismatched"]] == [2]
        assert set(data.malformed) == {"MNLI/train.tsv", "MNLI/dev_matched.tsv", "MNLI/dev_mismatched.tsv"}


def test_quote_characters_are_text(tmp_path):
    """An unbalanced quote must neither swallow the following lines nor lose its quote character."""
    write_layout(tmp_path, "mnli", LAYOUTS["mnli"][0])
    train = load_task(tmp_path, "mnli").train
    assert train[0].text_a == 'He said "yes".'
    assert train[1].text_a == '"Well, she began' and train[1].label == 2


def test_malformed_lines_are_counted_reported_and_the_rest_read(tmp_path, caplog):
    good = [f"sentence number {i}\t{i % 2}" for i in range(20)]
    lines = ["sentence\tlabel", *good[:5], "two\ttabs\t1", "an unknown label\t2", " \t1", "", *good[5:]]
    folder = write_layout(tmp_path, "sst2", {"train.tsv": "\n".join(lines) + "\n"})
    with caplog.at_level(logging.WARNING):
        data = load_task(tmp_path, "sst2", max_malformed_fraction=0.5)
    assert [e.text_a for e in data.train] == [g.split("\t")[0] for g in good]
    stats = data.stats["SST-2/train.tsv"]
    assert stats.lines == 24 and stats.examples == 20 and stats.malformed_total == 4
    assert dict(stats.malformed) == {"wrong field count": 1, "unknown label": 1, "empty sentence": 1,
                                     "blank line": 1}
    assert stats.samples[0].startswith("SST-2/train.tsv:7: wrong field count")
    assert data.malformed == {"SST-2/train.tsv": 4, "SST-2/dev.tsv": 4}
    assert "SST-2/train.tsv:8: unknown label" in caplog.text
    # by default more than 1% malformed lines is an error that names the file
    with pytest.raises(GlueFormatError, match=r"train\.tsv: 4 of 24 lines are malformed"):
        load_task(tmp_path, "sst2")
    # STS-B: an unparseable and an out-of-range score
    header, line = LAYOUTS["stsb"][0]["train.tsv"].splitlines()
    text = "\n".join([header, line, line.replace("5.000", "n/a"), line.replace("5.000", "7.5"), line]) + "\n"
    write_layout(tmp_path, "stsb", {"train.tsv": text})
    data = load_task(tmp_path, "stsb", max_malformed_fraction=0.5)
    assert len(data.train) == 2
    assert dict(data.stats["STS-B/train.tsv"].malformed) == {"unparseable score": 1, "score out of range": 1}
    # Reading never rewrites or drops the files it found malformed lines in.
    assert (folder / "train.tsv").read_text(encoding="utf-8") == "\n".join(lines) + "\n"


def test_missing_column_file_and_folder_are_named(tmp_path):
    write_layout(tmp_path, "qnli", {"train.tsv": "index\tquestion\tsentence\tgold\n0\ta?\tb.\tentailment\n"})
    with pytest.raises(GlueFormatError, match=r"QNLI/train\.tsv: the header lacks column\(s\) 'label'"):
        load_task(tmp_path, "qnli")
    write_layout(tmp_path, "rte", LAYOUTS["rte"][0])
    (tmp_path / "RTE" / "dev.tsv").unlink()
    with pytest.raises(GlueFormatError, match=r"missing file .*RTE/dev\.tsv"):
        load_task(tmp_path, "rte")
    with pytest.raises(GlueFormatError, match=r"no folder .*CoLA"):
        load_task(tmp_path, "cola")
    with pytest.raises(KeyError, match="unknown GLUE task"):
        load_task(tmp_path, "squad")


# --- metrics ----------------------------------------------------------------------------------------------------


def test_metrics_by_hand_multiclass_and_ties():
    """Cases worked out on paper (the metrics are scikit-learn's and SciPy's: these pin how they are called)."""
    # 3 classes: confusion rows (gold) [2 0 0] [1 0 1] [0 1 1]; n 6, correct 3, gold sums (2 2 2), predicted (3 1 2):
    # (3*6 - 12) / sqrt((36 - 12) * (36 - 14)) = 6 / sqrt(528)
    assert M.matthews_corrcoef([0, 2, 1, 0, 0, 2], [0, 1, 2, 0, 1, 2]) == pytest.approx(6 / math.sqrt(528))
    assert M.accuracy([0, 2, 1, 0, 0, 2], [0, 1, 2, 0, 1, 2]) == 0.5
    assert M.f1([1, 1, 1, 1], [1, 0, 0, 0]) == pytest.approx(0.4)  # TP 1, FP 3, FN 0: 2 / 5
    # ties take their average rank: (1, 2.5, 2.5, 4) against (1, 2, 3, 4) -> 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert M.spearman([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(3 / math.sqrt(10))
    assert M.spearman([3.0, 1.0, 2.0], [1.0, 3.0, 2.0]) == pytest.approx(-1.0)
    assert M.pearson([3, 2, 1], [1, 2, 4]) == pytest.approx(-9 / math.sqrt(84))


def test_metrics_by_hand_and_degenerate_cases():
    p, y = [1, 1, 1, 0], [1, 0, 1, 1]  # TP 2, FP 1, FN 1, TN 0
    assert M.accuracy(p, y) == 0.5
    assert M.f1(p, y) == pytest.approx(2 / 3)
    assert M.matthews_corrcoef(p, y) == pytest.approx(-1 / 3)
    assert M.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84))
    assert M.spearman([1, 2, 3], [1, 2, 4]) == pytest.approx(1.0)
    # constant predictions: MCC 0 as scikit-learn defines it; correlations undefined (NaN, as SciPy)
    assert M.matthews_corrcoef([1, 1, 1], [0, 1, 1]) == 0.0
    assert math.isnan(M.pearson([2.5, 2.5, 2.5], [1.0, 2.0, 4.0]))
    assert math.isnan(M.spearman([2.5, 2.5, 2.5], [1.0, 2.0, 4.0]))
    assert math.isnan(M.pearson([1.0, float("nan"), 2.0], [1.0, 2.0, 4.0]))
    assert M.f1([0, 0, 0], [0, 1, 1]) == 0.0
    # inputs that make a metric meaningless raise
    for call in (lambda: M.f1([1, 0], [0, 0]), lambda: M.matthews_corrcoef([1, 0], [1, 1]),
                 lambda: M.pearson([1.0, 2.0], [3.0, 3.0]), lambda: M.accuracy([], []),
                 lambda: M.accuracy([1, 0], [1]), lambda: M.accuracy([0.5], [1]),
                 lambda: task_metrics("sst2", [2, 0], [1, 0])):
        with pytest.raises(MetricError):
            call()


def test_task_metrics_and_main_metric():
    assert {t: main_metric(t) for t in TASKS} == {
        "cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "qqp": "accuracy", "stsb": "pearson",
        "mnli": "matched_accuracy", "qnli": "accuracy", "rte": "accuracy"}
    assert set(task_metrics("mrpc", [1, 0, 1], [1, 1, 1])) == {"f1", "accuracy"}
    assert set(task_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 2.5, 2.0])) == {"pearson", "spearman"}
    mnli = dev_metrics("mnli", {"matched": ([0, 1, 2], [0, 1, 1]), "mismatched": ([0, 0], [0, 0])})
    assert mnli == {"matched_accuracy": pytest.approx(2 / 3), "mismatched_accuracy": 1.0,
                    "main": pytest.approx(2 / 3)}
    with pytest.raises(MetricError, match="mismatched"):
        dev_metrics("mnli", {"matched": ([0], [0])})


# --- selection --------------------------------------------------------------------------------------------------


def cell(task: str, batch_size: int, lr: float, main: float | None, **extra) -> dict:
    key = main_metric(task)
    return {"task": task, "batch_size": batch_size, "lr": lr, "seed": 42, "epochs": 5,
            "dev": {key: main, "main": main, **extra}, "majority_baseline": {key: 0.5, "main": 0.5}}


def test_select_best_breaks_ties_by_smaller_lr_then_batch():
    cells = [cell("rte", 32, 5e-5, 0.6), cell("rte", 32, 3e-5, 0.7), cell("rte", 16, 8e-5, 0.7),
             cell("rte", 32, 1e-5, 0.5), cell("rte", 16, 3e-5, 0.7), cell("rte", 16, 1e-5, None)]
    for _ in range(4):
        random.Random(_).shuffle(cells)
        best = select_best(cells, "rte")
        assert best["cell"]["batch_size"] == 16 and best["cell"]["lr"] == 3e-5 and best["main"] == 0.7
    assert len(best["cells"]) == 6 and best["missing"] == []
    with pytest.raises(ValueError, match="no grid cell has a defined"):
        select_best([cell("rte", 16, 1e-5, None), cell("rte", 32, 1e-5, float("nan"))], "rte")
    with pytest.raises(ValueError, match="two results for cell bs16_lr1e-05"):
        select_best([cell("rte", 16, 1e-5, 0.5), cell("rte", 16, 1e-5, 0.6)], "rte")
    with pytest.raises(ValueError, match="for task 'cola'"):
        select_best([cell("cola", 16, 1e-5, 0.5)], "rte")


def test_select_best_missing_cells():
    grid = [(b, lr) for b in (16, 32) for lr in (1e-5, 3e-5)]
    results = [cell("sst2", 16, 1e-5, 0.8), cell("sst2", 32, 1e-5, 0.9), cell("sst2", 32, 3e-5, 0.85)]
    with pytest.raises(MissingCellError, match="bs16_lr3e-05"):
        select_best(results, "sst2", expected=grid)
    best = select_best(results, "sst2", expected=grid, allow_missing=True)
    assert best["missing"] == ["bs16_lr3e-05"] and best["cell"]["batch_size"] == 32 and best["main"] == 0.9
    with pytest.raises(MissingCellError, match="cell 2 of 3"):
        select_best([results[0], None, results[2]], "sst2")
    with pytest.raises(MissingCellError, match="bs32_lr1e-05"):
        select_best({"bs16_lr1e-05": results[0], "bs32_lr1e-05": None}, "sst2")
    assert select_best({"bs16_lr1e-05": results[0], "bs32_lr1e-05": None}, "sst2",
                       allow_missing=True)["missing"] == ["bs32_lr1e-05"]


def test_majority_baseline():
    sst2 = majority_baseline("sst2", [1, 1, 0], [0, 1, 1, 1])
    assert sst2 == {"prediction": "1", "accuracy": 0.75, "main": 0.75}
    mrpc = majority_baseline("mrpc", [1, 1, 0], [1, 1, 0, 0])
    assert mrpc["f1"] == pytest.approx(2 / 3) and mrpc["accuracy"] == 0.5 and mrpc["main"] == mrpc["f1"]
    assert majority_baseline("cola", [0, 1], [1, 0, 1]) == {"prediction": "0", "mcc": 0.0, "main": 0.0}  # tie: 0
    stsb = majority_baseline("stsb", [1.0, 2.0, 4.5], [0.5, 3.0, 5.0])
    assert stsb == {"prediction": 2.5, "pearson": None, "spearman": None, "main": None}
    mnli = majority_baseline("mnli", [2, 2, 1], {"matched": [2, 0], "mismatched": [2, 2, 2, 1]})
    assert mnli["prediction"] == "contradiction" and mnli["main"] == 0.5 and mnli["mismatched_accuracy"] == 0.75
    with pytest.raises(ValueError, match="mapping"):
        majority_baseline("mnli", [0], [0])


def test_summarize_and_table():
    results = {
        "rte": [cell("rte", 16, 1e-5, 0.61), cell("rte", 32, 1e-5, 0.64)],
        "cola": [cell("cola", 16, 1e-5, 0.40), cell("cola", 32, 1e-5, 0.30)],
        "stsb": [cell("stsb", 16, 1e-5, 0.80, spearman=0.79), None],
    }
    results["stsb"][0]["majority_baseline"] = {"prediction": 2.5, "pearson": None, "spearman": None, "main": None}
    with pytest.raises(MissingCellError):
        summarize("nokd6", results)
    summary = summarize("nokd6", results, allow_missing=True)
    assert list(summary["tasks"]) == ["rte", "cola", "stsb"]  # Table 2 order, STS-B last
    assert summary["tasks"]["rte"]["main"] == 0.64 and summary["tasks"]["rte"]["cell"]["batch_size"] == 32
    assert summary["average_over"] == ["rte", "cola"] and summary["average"] == pytest.approx(0.52)
    json.dumps(summary, allow_nan=False)
    table = render_table(summary)
    assert "| RTE | accuracy | 64.0 | 50.0 |" in table
    assert "| STS-B | pearson | 80.0 | n/a | spearman 79.0 (n/a) |" in table
    assert "cell 2 of 2" in table and "| Avg (2 tasks) | | 52.0 |" in table


# --- fine-tuning end to end -------------------------------------------------------------------------------------
# Every run uses one thread: two threads on two cores shared with other jobs can be ~50x slower.

WORDS = ("the film movie plot story actor scene music was is very quite rather truly a an this that it and but "
         "long short funny dull slow fast old new").split()


def toy_sentence(rng: random.Random, good: bool) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(5, 12))]
    if good:
        words.insert(rng.randrange(len(words) + 1), "good")
    elif rng.random() < 0.5:
        words.insert(rng.randrange(len(words) + 1), "bad")
    return " ".join(words)


def write_toy_glue(glue_dir: Path, n_train: int, n_dev: int, seed: int = 0) -> Path:
    """SST-2-like: label 1 iff the sentence contains "good"; STS-B-like: score 5 x word overlap."""
    rng = random.Random(seed)

    def sst2(n):
        rows = []
        for i in range(n):
            label = i % 2
            rows.append(f"{toy_sentence(rng, bool(label))}\t{label}")
        return "sentence\tlabel\n" + "\n".join(rows) + "\n"

    def stsb(n):
        rows = []
        for i in range(n):
            a = toy_sentence(rng, False).split()
            b = [w if rng.random() < 0.5 else rng.choice(WORDS) for w in a]
            score = 5 * len(set(a) & set(b)) / len(set(a) | set(b))
            rows.append(f"{i}\tmain\tt\t2012\t{i}\tnone\tnone\t{' '.join(a)}\t{' '.join(b)}\t{score:.3f}")
        return STSB_HEADER + "\n" + "\n".join(rows) + "\n"

    write_layout(glue_dir, "sst2", {"train.tsv": sst2(n_train), "dev.tsv": sst2(n_dev)})
    write_layout(glue_dir, "stsb", {"train.tsv": stsb(n_train), "dev.tsv": stsb(n_dev)})
    return glue_dir


def test_batch_plan_groups_lengths_and_covers_each_example_once():
    from kdbudget.glue.batches import batch_plan, epoch_plans

    lengths = np.random.default_rng(0).integers(3, 60, 1000)
    plan = batch_plan(lengths, 8, np.random.default_rng(1), chunk_batches=10)
    assert sorted(np.concatenate(plan).tolist()) == list(range(1000)) and len(plan) == 125
    spread = np.mean([np.ptp(lengths[batch]) for batch in plan])
    assert spread < 0.25 * np.ptp(lengths)  # lengths within a batch are close
    again = batch_plan(lengths, 8, np.random.default_rng(1), chunk_batches=10)
    assert all(np.array_equal(a, b) for a, b in zip(plan, again, strict=True))
    assert [len(p) for p in epoch_plans(lengths, 100, 2.25, np.random.default_rng(0))] == [10, 10, 3]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from kdbudget.data.tokenizer import save_tokenizer, train_wordpiece
    from kdbudget.model import KDBertForMaskedLM, bert_config, save_pretrained

    root = tmp_path_factory.mktemp("glue_model")
    rng = random.Random(1)
    texts = [toy_sentence(rng, rng.random() < 0.5) for _ in range(200)]
    tokenizer = train_wordpiece(texts, vocab_size=120, lowercase=True, min_frequency=1)
    save_tokenizer(tokenizer, root / "tokenizer")
    torch.manual_seed(0)
    model = KDBertForMaskedLM(bert_config(2, 32, 4, 64, len(tokenizer), max_positions=64))
    save_pretrained(model, root / "model")
    for item in (root / "tokenizer").iterdir():
        shutil.copy2(item, root / "model" / item.name)
    return root / "model"


@pytest.fixture(scope="module")
def toy_glue(tmp_path_factory) -> Path:
    return write_toy_glue(tmp_path_factory.mktemp("glue_data"), 64, 32)


def test_finetune_result_fields_and_determinism(model_dir, toy_glue):
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from kdbudget.glue.finetune import finetune

    kwargs = dict(batch_size=16, lr=1e-3, epochs=2, seed=3, max_seq_len=32, warmup=0.1, threads=1)
    used: list[float] = []  # the learning rate of every optimizer step, as the optimizer applies it
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: used.append(optimizer.param_groups[0]["lr"]))
    try:
        first = finetune(model_dir, toy_glue, "sst2", **kwargs)
    finally:
        hook.remove()
    # 64 examples, batch 16, 2 epochs: 8 steps; warmup ceil(0.1 * 8) = 1 step; then (8 - k) / 7 of the peak
    assert used == pytest.approx([0.0, 1e-3, 6e-3 / 7, 5e-3 / 7, 4e-3 / 7, 3e-3 / 7, 2e-3 / 7, 1e-3 / 7], abs=1e-15)
    assert first["optimizer"]["warmup_steps"] == 1
    for field in ("task", "model", "batch_size", "lr", "seed", "epochs", "dev", "train_loss", "examples_per_second",
                  "seconds", "train_examples", "malformed", "device", "majority_baseline", "train_steps"):
        assert field in first, field
    assert first["task"] == "sst2" and first["train_examples"] == 64 and first["train_steps"] == 2 * 4
    assert set(first["dev"]) == {"accuracy", "main"} and first["malformed"] == {"SST-2/train.tsv": 0,
                                                                               "SST-2/dev.tsv": 0}
    assert first["majority_baseline"]["main"] == 0.5 and first["examples_per_second"] > 0
    json.dumps(first, allow_nan=False)
    second = finetune(model_dir, toy_glue, "sst2", **kwargs)
    assert second["dev"] == first["dev"] and second["epoch_losses"] == first["epoch_losses"]
    other = finetune(model_dir, toy_glue, "sst2", **{**kwargs, "seed": 4})
    assert other["epoch_losses"] != first["epoch_losses"]


def test_finetune_regression_in_bf16_against_fp32(model_dir, toy_glue, monkeypatch):
    """bf16 autocast (a GPU's path, here on the CPU) really computes in bf16 and lands near fp32:
    the same training and dev set, predictions nearly the same, the losses close but not equal."""
    from kdbudget.glue import finetune as finetune_module

    real_predict = finetune_module.predict
    seen: dict[str, tuple[np.ndarray, set]] = {}

    def spy(model, data, batch_size, device, autocast):
        dtypes: set = set()
        handle = model.register_forward_hook(lambda module, args, output: dtypes.add(output.logits.dtype))
        try:
            predictions = real_predict(model, data, batch_size, device, autocast)
        finally:
            handle.remove()
        seen[current] = (predictions, dtypes)
        return predictions

    monkeypatch.setattr(finetune_module, "predict", spy)
    results = {}
    for current in ("fp32", "bf16"):
        results[current] = finetune_module.finetune(model_dir, toy_glue, "stsb", batch_size=16, lr=1e-3, epochs=2,
                                                    max_seq_len=64, threads=1, precision=current)
    fp32, bf16 = results["fp32"], results["bf16"]
    assert (fp32["precision"], bf16["precision"]) == ("torch.float32", "torch.bfloat16")
    assert seen["fp32"][1] == {torch.float32} and seen["bf16"][1] == {torch.bfloat16}  # the logits' dtype
    assert set(bf16["dev"]) == {"pearson", "spearman", "main"} and bf16["majority_baseline"]["main"] is None
    a, b = seen["fp32"][0], seen["bf16"][0]
    assert a.shape == b.shape == (32,)
    assert not np.array_equal(a, b)  # bf16 changed the computation...
    # ...but not the answers: every score within a few bf16 roundings (2**-8 relative) of fp32's
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max() + 1e-3, np.abs(a - b).max()
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], rel=0.01)
    assert bf16["epoch_losses"] != fp32["epoch_losses"]


def test_finetune_learns_a_toy_task_and_keeps_hf_weights(model_dir, tmp_path):
    from transformers import AutoTokenizer, BertForSequenceClassification

    from kdbudget.glue.finetune import finetune

    glue = write_toy_glue(tmp_path / "glue", 256, 64, seed=5)
    result = finetune(model_dir, glue, "sst2", batch_size=16, lr=2e-3, epochs=8, max_seq_len=32, warmup=0.1,
                      threads=1, keep_weights_dir=tmp_path / "kept")
    assert result["dev"]["accuracy"] >= 0.9, result["dev"]  # chance: 0.5
    assert result["train_loss"] < 0.2 < result["epoch_losses"][0]
    # the kept weights load as a transformers BertForSequenceClassification and score the same
    hf, info = BertForSequenceClassification.from_pretrained(tmp_path / "kept", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "kept", local_files_only=True)
    dev = load_task(glue, "sst2").dev["dev"]
    batch = tokenizer([e.text_a for e in dev], padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        predictions = hf.eval()(**batch).logits.argmax(-1)
    accuracy = float((predictions == torch.tensor([e.label for e in dev])).float().mean())
    assert accuracy == pytest.approx(result["dev"]["accuracy"])
    assert json.loads((tmp_path / "kept" / "result.json").read_text())["dev"] == result["dev"]


def test_a_pre_ln_student_fine_tunes_and_keeps_roberta_prelayernorm_weights(model_dir, toy_glue, tmp_path):
    """A pre-LN student (the released No-KD code's layout) through the same fine-tuning, on the regression task;
    the kept model loads as transformers' RobertaPreLayerNormForSequenceClassification and predicts the same."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdbudget.glue.finetune import finetune
    from kdbudget.model import KDBertForMaskedLM, bert_config, read_config, save_pretrained

    post = read_config(model_dir)
    torch.manual_seed(0)
    pre = KDBertForMaskedLM(bert_config(2, 32, 4, 64, post.vocab_size, max_positions=64, layer_norm="pre"))
    save_pretrained(pre, tmp_path / "pre")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, tmp_path / "pre" / name)
    result = finetune(tmp_path / "pre", toy_glue, "stsb", batch_size=16, lr=1e-3, epochs=2, max_seq_len=64,
                      threads=1, keep_weights_dir=tmp_path / "kept")
    assert result["train_steps"] == 8 and result["dev"]["pearson"] is not None
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "kept")
    assert type(hf).__name__ == "RobertaPreLayerNormForSequenceClassification"
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "kept", local_files_only=True)
    dev = load_task(toy_glue, "stsb").dev["dev"]
    batch = tokenizer([e.text_a for e in dev], [e.text_b for e in dev], padding=True, truncation=True, max_length=64,
                      return_tensors="pt")
    with torch.no_grad():
        scores = hf.eval()(**batch).logits.squeeze(-1).numpy()
    assert M.pearson(scores, [e.label for e in dev]) == pytest.approx(result["dev"]["pearson"], abs=1e-5)



def test_a_mobilebert_student_fine_tunes_with_bert_s_head_and_keeps_transformers_weights(model_dir, toy_glue,
                                                                                          tmp_path):
    """A MobileBERT-shaped student (the bottleneck shape option) fine-tunes as transformers'
    MobileBertForSequenceClassification with BERT's head (dense + tanh on the first token), and the kept model
    loads with the Auto class and predicts what the result says."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdbudget.glue.classifier import head_layers
    from kdbudget.glue.finetune import finetune
    from kdbudget.model import read_config, save_pretrained
    from kdbudget.model.mobilebert import KDMobileBertForMaskedLM, mobilebert_config

    vocab = read_config(model_dir).vocab_size
    torch.manual_seed(0)
    student = KDMobileBertForMaskedLM(mobilebert_config(2, 32, 4, 32, vocab, 64, bottleneck=16, embedding_size=16,
                                                        ffn_stack=2))
    save_pretrained(student, tmp_path / "mobile")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, tmp_path / "mobile" / name)
    result = finetune(tmp_path / "mobile", toy_glue, "sst2", batch_size=16, lr=1e-3, epochs=2, max_seq_len=64,
                      threads=1, keep_weights_dir=tmp_path / "kept")
    assert result["train_steps"] == 8 and result["dev"]["accuracy"] is not None
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "kept").eval()
    assert type(hf).__name__ == "MobileBertForSequenceClassification" and hf.config.classifier_activation
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "kept", local_files_only=True)
    dev = load_task(toy_glue, "sst2").dev["dev"]
    batch = tokenizer([e.text_a for e in dev], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        logits = hf(**batch).logits
        # BERT's head by hand on the encoder's first token: classifier(tanh(dense(h0))); dropout is off in eval.
        dense, classifier = head_layers(hf)
        first = hf.mobilebert(**batch).last_hidden_state[:, 0]
        torch.testing.assert_close(logits, classifier(torch.tanh(dense(first))), rtol=1e-5, atol=1e-5)
    accuracy = float((logits.argmax(-1) == torch.tensor([e.label for e in dev])).float().mean())
    assert accuracy == pytest.approx(result["dev"]["accuracy"])

@pytest.fixture
def restore_logging():
    """The command line configures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_cli_finetune_and_summarize(model_dir, toy_glue, tmp_path, restore_logging):
    from kdbudget.glue.__main__ import main

    out = tmp_path / "results"
    for lr, epochs in ((1e-3, "1"), (2e-3, "1.5")):
        assert main(["finetune", "--model", str(model_dir), "--glue", str(toy_glue), "--task", "sst2",
                     "--batch-size", "32", "--lr", str(lr), "--epochs", epochs, "--max-seq-len", "32",
                     "--threads", "1", "--out", str(out / f"sst2_{lr:g}.json")]) == 0
    assert json.loads((out / "sst2_0.002.json").read_text())["train_steps"] == 3  # 64 examples: 2 + 1 batches
    files = sorted(str(p) for p in out.glob("*.json"))
    with pytest.raises(MissingCellError, match="bs16_lr0.001"):
        main(["summarize", "--model", "toy", "--results", *files, "--batch-sizes", "16", "32",
              "--lrs", "1e-3", "2e-3", "--out", str(tmp_path / "summary.json")])
    assert main(["summarize", "--model", "toy", "--results", *files, "--out", str(tmp_path / "summary.json"),
                 "--table", str(tmp_path / "summary.md")]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tasks"]["sst2"]["cell"]["batch_size"] == 32
    assert "| SST-2 | accuracy |" in (tmp_path / "summary.md").read_text()


def test_hub_copy_is_written_in_the_layout_the_loader_reads(tmp_path):
    """`save_hub_glue` through the real `datasets.load_dataset`, on a local clone of nyu-mll/glue whose
    columns, label names and split names are the hub's, written out independently in hub_standin."""
    from hub_standin import GLUE_HUB_SCHEMA, glue_clone, glue_rows

    from kdbudget.glue import save_hub_glue

    clone = glue_clone(tmp_path / "nyu-mll-glue", rows_per_split=6)
    counts = save_hub_glue(tmp_path / "glue", hub_name=str(clone))
    assert counts["mnli"] == {"train.tsv": 6, "dev_matched.tsv": 6, "dev_mismatched.tsv": 6}
    for name in TASKS:
        text_columns, names, _ = GLUE_HUB_SCHEMA[name]
        data = load_task(tmp_path / "glue", name)
        rows = glue_rows(name, "train", 6)
        assert [e.text_a for e in data.train] == rows[text_columns[0]]
        assert [e.text_b for e in data.train] == (rows[text_columns[1]] if len(text_columns) == 2 else [None] * 6)
        if names is None:
            assert [e.label for e in data.train] == pytest.approx(rows["label"], abs=5e-4)
        else:  # the hub's label index is our label index
            assert [e.label for e in data.train] == rows["label"]
        assert all(len(v) == 6 for v in data.dev.values())




# --- grid cell names (kdbudget.glue.cells) -----------------------------------------------------------------------


@pytest.mark.parametrize("args, name", [
    ((32, 3e-5), "bs32_lr3e-05"), ((16, 1e-5), "bs16_lr1e-05"), ((8, 0.001), "bs8_lr0.001"),
    ((8, 1e-3, 42), "bs8_lr0.001_seed42"), ((16, 8e-5, 0), "bs16_lr8e-05_seed0"),
])
def test_cell_names_and_their_parse(args, name):
    import re

    from kdbudget.glue.cells import CELL_REGEX, cell_name, parse_cell

    assert cell_name(*args) == name
    cell = parse_cell(name)
    assert (cell.batch_size, cell.lr, cell.seed) == (args[0], args[1], args[2] if len(args) == 3 else None)
    assert cell.name == name and re.fullmatch(CELL_REGEX, name)


@pytest.mark.parametrize("name", ["bs32", "lr3e-05", "bs32_lr", "bs32_lr3e-05_seed", "bsx_lr1e-5", "bs8_lr1e--5",
                                  "bs8_lr0.001_seed42.json", "sst2/bs8_lr0.001"])
def test_malformed_cell_names_are_refused(name):
    from kdbudget.glue.cells import parse_cell

    with pytest.raises(ValueError, match="cell|learning rate"):
        parse_cell(name)


def test_the_grid_names_seeds_only_when_there_are_several():
    from kdbudget.glue.cells import grid_cells

    assert grid_cells([16, 32], [1e-5], [42]) == {"bs16_lr1e-05": {"batch_size": 16, "lr": 1e-5, "seed": 42},
                                                  "bs32_lr1e-05": {"batch_size": 32, "lr": 1e-5, "seed": 42}}
    assert list(grid_cells([8], [1e-3, 3e-4], [1, 2])) == ["bs8_lr0.001_seed1", "bs8_lr0.001_seed2",
                                                           "bs8_lr0.0003_seed1", "bs8_lr0.0003_seed2"]
    with pytest.raises(ValueError, match="same cell name"):
        grid_cells([8], [1e-5, 1.0000001e-5], [42])


def test_the_workflow_and_selection_use_the_package_cell_names():
    """One home: the rules and the best-of-grid selection import kdbudget.glue.cells instead of spelling names."""
    from kdbudget.glue import cells, select

    root = Path(__file__).resolve().parents[1]
    common = (root / "rules" / "common.smk").read_text()
    assert "from kdbudget.glue.cells import CELL_REGEX, grid_cells" in common
    assert "cell=CELL_REGEX" in common and "_lr" not in common
    assert select.cell_name is cells.cell_name
