"""Caption clean-up: every T5 normalisation rule and every structural-token rule, one by one."""
import unicodedata

import pytest

from mirflow.captions.text import T5_REPLACEMENTS, clean_caption, normalize_caption_text, strip_structural_tokens


@pytest.mark.parametrize("raw, expected", [
    ("lo\u2011fi", "lo-fi"),                 # non-breaking hyphen
    ("hip\u2010hop", "hip-hop"),             # hyphen
    ("128\u202fBPM", "128 BPM"),             # narrow no-break space
    ("intro\u2014then drop", "intro--then drop"),  # em dash: two hyphens, as the old code did
    ("1990\u20132000", "1990-2000"),         # en dash
    ("\u2018Round Midnight\u2019", "'Round Midnight'"),  # curly single quotes
    ("\u201cdark\u201d mood", '"dark" mood'),  # curly double quotes
])
def test_each_t5_punctuation_rule(raw, expected):
    assert normalize_caption_text(raw) == expected


def test_nfkc_runs_after_the_punctuation_rules():
    # ligature, full-width letters, superscript two, no-break space: compatibility forms NFKC folds
    assert normalize_caption_text("\ufb01ne \uff21\uff2d x\u00b2\u00a0bass") == "fine AM x2 bass"
    # NFKC keeps accents composed (it is not an ASCII folding)
    assert normalize_caption_text("cafe\u0301") == "caf\u00e9"


def test_em_dash_is_replaced_before_nfkc_would_see_it():
    # NFKC leaves U+2014 unchanged, so without rule 2c it would reach the tokenizer
    assert unicodedata.normalize("NFKC", "\u2014") == "\u2014"
    assert normalize_caption_text("a\u2014b") == "a--b"
    assert [old for old, _ in T5_REPLACEMENTS] == ["\u2011", "\u2010", "\u202f", "\u2014", "\u2013",
                                                   "\u2018", "\u2019", "\u201c", "\u201d"]


@pytest.mark.parametrize("raw, expected", [
    ("<think>The user wants a caption.</think>A dark techno track.", "A dark techno track."),
    ("<THINK>\nplan\n</THINK>\nWarm jazz.", "Warm jazz."),
    ("Warm jazz. <think>unfinished reasoning that never closed", "Warm jazz."),
    ("reasoning the template opened</think> Warm jazz.", "Warm jazz."),
    ("<|im_start|>assistant\nA mellow folk song.<|im_end|>", "A mellow folk song."),
    ("A mellow folk song.<|endoftext|>", "A mellow folk song."),
    ("<|eot_id|>Bright pop.<|end_of_text|>", "Bright pop."),
    ("[INST] describe [/INST] Bright pop.</s>", "describe Bright pop."),
    ("<s>[INST]<<SYS>>x<</SYS>>[/INST]Bright pop.", "x Bright pop."),
    ("<|start_of_role|>assistant<|end_of_role|>Short ambient piece.<|end_of_text|>", "Short ambient piece."),
    ("<|start_header_id|>assistant<|end_header_id|>\n\nSlow blues.", "Slow blues."),
    ("<start_of_turn>model\nSlow blues.<end_of_turn>", "Slow blues."),
    (("<|start|>assistant<|channel|>analysis<|message|>Think first.<|end|>"
     "<|start|>assistant<|channel|>final<|message|>Fast drum and bass.<|return|>"), "Fast drum and bass."),
    ("<sound>Strings swell.", "Strings swell."),
])
def test_structural_tokens_and_reasoning_are_removed(raw, expected):
    assert clean_caption(raw) == expected


def test_strip_keeps_text_that_only_looks_like_markup():
    # a comparison sign or a bracketed word is prose, not a template token
    assert strip_structural_tokens("tempo < 100 BPM [live]") == "tempo < 100 BPM [live]"


def test_clean_caption_collapses_whitespace_and_can_return_empty():
    assert clean_caption("  A\n\tdark   track  ") == "A dark track"
    assert clean_caption("<think>only reasoning</think><|im_end|>") == ""


def test_clean_caption_applies_both_stages():
    raw = "<|im_start|>assistant\n\u201cLo\u2011fi\u201d beat \u2014 90\u202fBPM<|im_end|>"
    assert clean_caption(raw) == '"Lo-fi" beat -- 90 BPM'
