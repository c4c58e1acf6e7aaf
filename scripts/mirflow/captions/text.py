"""Clean-up applied to every caption before it is stored.

Captions condition a text-to-music model through a T5 text encoder. The T5
SentencePiece vocabulary has no pieces for several Unicode punctuation marks
that language models like to emit (non-breaking hyphens, narrow no-break
spaces, curly quotes, dashes): they become ``<unk>`` or split words. Chat
models also leak their template tokens and reasoning blocks into the text.

:func:`clean_caption` applies, in this order:

1. :func:`strip_structural_tokens`:

   a. ``<think>...</think>`` blocks are removed with their content (an
      unterminated ``<think>`` removes everything after it: the answer never
      came); a stray ``</think>`` removes everything before it (the reasoning
      of a template that opened the block in the prompt);
   b. Harmony reasoning channels (``<|channel|>analysis<|message|>...``) are
      removed up to their ``<|end|>``;
   c. a role name right after a turn opener (``<|im_start|>assistant``,
      ``<|start_of_role|>assistant<|end_of_role|>``, ``<|start_header_id|>
      assistant<|end_header_id|>``, ``<start_of_turn>model``,
      ``<|start|>assistant``) is removed with the opener;
   d. every remaining chat-template token: any ``<|...|>`` token
      (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ``<|eot_id|>``,
      ``<|end|>``, ...), ``[INST]``, ``[/INST]``, ``<<SYS>>``, ``<</SYS>>``,
      ``<s>``, ``</s>``, ``<start_of_turn>``, ``<end_of_turn>``,
      ``<sound>``, ``<__media__>``;

2. :func:`normalize_caption_text` (the T5 rules, in code order):

   a. U+2011 (non-breaking hyphen) and U+2010 (hyphen) -> ``-``;
   b. U+202F (narrow no-break space) -> space;
   c. U+2014 (em dash) -> ``--``;
   d. U+2013 (en dash) -> ``-``;
   e. U+2018, U+2019 (curly single quotes) -> ``'``;
      U+201C, U+201D (curly double quotes) -> ``"``;
   f. Unicode NFKC (ligatures, full-width forms, no-break space U+00A0 ->
      space, ...);

3. runs of whitespace collapse to one space; leading/trailing space is
   stripped.

The em dash becomes two hyphens, not one: the old system's documentation said
``-`` while its code wrote ``--``; the code is the reference.
"""
from __future__ import annotations

import re
import unicodedata

#: Characters rewritten before NFKC (rules 2a-2e), in the order they are applied.
T5_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("\u2011", "-"),
    ("\u2010", "-"),
    ("\u202f", " "),
    ("\u2014", "--"),
    ("\u2013", "-"),
    ("\u2018", "'"),
    ("\u2019", "'"),
    ("\u201c", '"'),
    ("\u201d", '"'),
)

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*\Z", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE = re.compile(r"\A.*?</think>", re.DOTALL | re.IGNORECASE)
_HARMONY_ANALYSIS = re.compile(
    r"<\|channel\|>\s*analysis\s*<\|message\|>.*?(?:<\|end\|>|\Z)", re.DOTALL | re.IGNORECASE)
_HARMONY_CHANNEL = re.compile(r"<\|channel\|>\s*\w+\s*(?:<\|constrain\|>\s*\w+\s*)?<\|message\|>", re.IGNORECASE)
_ROLE = r"\s*(?:system|user|assistant|model|developer|tool)?\s*"
_TURN_OPENERS = re.compile(
    r"<\|im_start\|>" + _ROLE
    + r"|<\|start_of_role\|>" + _ROLE + r"<\|end_of_role\|>"
    + r"|<\|start_header_id\|>" + _ROLE + r"<\|end_header_id\|>"
    + r"|<start_of_turn>" + _ROLE
    + r"|<\|start\|>" + _ROLE,
    re.IGNORECASE)
_TEMPLATE_TOKENS = re.compile(
    r"<\|[^|<>\n]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>|<start_of_turn>|<end_of_turn>|<sound>|<__media__>",
    re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def strip_structural_tokens(text: str) -> str:
    """Remove reasoning blocks and chat-template tokens (rules 1a-1d of the module doc).

    Parameters
    ----------
    text : str
        Raw model output.

    Returns
    -------
    str
        The text without them; whitespace is left as it was.
    """
    text = _THINK_BLOCK.sub(" ", text)
    text = _THINK_OPEN.sub(" ", text)
    text = _THINK_CLOSE.sub(" ", text)
    text = _HARMONY_ANALYSIS.sub(" ", text)
    text = _HARMONY_CHANNEL.sub(" ", text)
    text = _TURN_OPENERS.sub(" ", text)
    return _TEMPLATE_TOKENS.sub(" ", text)


def normalize_caption_text(text: str) -> str:
    """Apply the T5 punctuation rules 2a-2e, then Unicode NFKC (rule 2f).

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    str
        The normalised text (whitespace is not collapsed here).
    """
    for old, new in T5_REPLACEMENTS:
        text = text.replace(old, new)
    return unicodedata.normalize("NFKC", text)


def clean_caption(text: str) -> str:
    """The full clean-up applied to every stored caption (rules 1-3 of the module doc).

    Parameters
    ----------
    text : str
        Raw model output.

    Returns
    -------
    str
        Cleaned caption; may be empty (the caller records the key as absent).
    """
    return _SPACES.sub(" ", normalize_caption_text(strip_structural_tokens(text))).strip()
