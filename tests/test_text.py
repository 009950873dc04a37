"""Cleaning and sentence splitting on hand-written text."""

from kdbudget.data.clean import clean_text, fingerprint
from kdbudget.data.sentences import split_sentences


def test_markup_leftovers_are_removed_and_link_text_kept():
    raw = ("The [[Cat (animal)|cat]] sat on the [[mat]] &amp; slept.<ref>Smith 2001</ref> "
           "It purred{{citation needed}} <ref name=\"a\" />loudly '''all''' night.\n"
           "{| class=\"wikitable\"\n| a || b\n|}")
    assert clean_text(raw) == "The cat sat on the mat & slept. It purred loudly all night."


def test_short_lines_are_dropped_only_below_the_threshold():
    text = "History.\nThe town grew quickly after the war ended.\nYes."
    assert clean_text(text, min_line_words=4) == "The town grew quickly after the war ended."
    assert clean_text(text) == text


def test_duplicate_fingerprint_ignores_whitespace_only():
    assert fingerprint("a  b\nc") == fingerprint("a b c")
    assert fingerprint("a b c") != fingerprint("a b d")


def test_sentence_splitting():
    text = ('Dr. Smith went to St. Louis in 1901. He met J. R. R. Tolkien there! "Why?" she asked. '
            "It cost 3.5 dollars. no capital here. The end\nA new paragraph starts here.")
    assert split_sentences(text) == [
        "Dr. Smith went to St. Louis in 1901.",
        "He met J. R. R. Tolkien there!",
        '"Why?" she asked.',
        "It cost 3.5 dollars. no capital here.",
        "The end",
        "A new paragraph starts here.",
    ]
