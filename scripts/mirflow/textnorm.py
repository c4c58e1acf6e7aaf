"""Text normalisation for prompts fed to a T5 text encoder.

The T5 tokenizer (SentencePiece trained on mostly English web text) has no
pieces for many Unicode punctuation marks and accented letters: an em dash, a
curly quote or a non-breaking hyphen becomes ``<unk>`` or splits a word. Tag
values (artist, title, album, genre) are full of them. :func:`normalize_text`
rewrites a string into plain ASCII wherever a faithful ASCII spelling exists.

Where it is applied (the decision, also stated in ``mirflow.metadata``): the
``.INFO`` keeps every tag exactly as it is stored in the file
(``track_metadata_*``); only the prompt builders of the training exports
(``mirflow.exports``) normalise the strings they put into a prompt or a
sidecar text field. Nothing here touches any file.

Rules, in the order they are applied:

1. literal ``\\uXXXX`` escapes (as left by a broken JSON/ID3 round trip) are
   decoded, including UTF-16 surrogate pairs; an unpaired surrogate is dropped;
2. punctuation: U+2010/U+2011/U+2012/U+2013/U+2212 -> ``-``, U+2014/U+2015 ->
   ``--``, curly/low/reversed single quotes and primes -> ``'``, curly/low
   double quotes, double primes and guillemets -> ``"``, U+2026 -> ``...``,
   U+2044 (fraction slash) -> ``/``;
3. spaces: every Unicode space (NBSP U+00A0, U+202F, U+2007, thin and em
   spaces, tabs, line breaks) -> `` ``; zero-width characters (U+200B-U+200D,
   U+2060, U+FEFF) and soft hyphens are removed;
4. letters NFKD cannot decompose are spelled out: ß -> ss, ẞ -> SS, æ -> ae,
   œ -> oe, ø -> o, ł -> l, đ/ð -> d, þ -> th, ı -> i, ħ -> h, ŧ -> t, ŋ -> ng,
   ĸ -> q, ſ -> s (and upper-case forms);
5. Unicode NFKD, then every combining mark is dropped (é -> e, ñ -> n, ů -> u;
   compatibility forms: ligature ﬁ -> fi, full-width letters -> ASCII);
6. remaining control/format/private-use/unassigned characters (category C*)
   are removed;
7. runs of spaces collapse to one; leading/trailing spaces are stripped.

Letters of other scripts (Cyrillic, Greek, CJK, ...) have no faithful ASCII
spelling and are kept unchanged unless ``drop_non_ascii=True`` (then every
remaining non-ASCII character is removed): removing them silently would turn
an artist name into an empty string.
"""
from __future__ import annotations

import re
import unicodedata

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")

#: Punctuation and spacing with an ASCII equivalent (rule 2 and 3).
PUNCTUATION_MAP: dict[str, str] = {
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-",
    "\u2014": "--", "\u2015": "--",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u2035": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u2036": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
    "\u2026": "...",
    "\u2044": "/",
    "\u00ad": "",  # soft hyphen: an invisible hyphenation hint
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "",
}

#: Letters without a canonical decomposition (rule 4).
LETTER_MAP: dict[str, str] = {
    "ß": "ss", "ẞ": "SS",
    "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
    "ø": "o", "Ø": "O",
    "ł": "l", "Ł": "L",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D",
    "þ": "th", "Þ": "Th",
    "ı": "i",
    "ħ": "h", "Ħ": "H",
    "ŧ": "t", "Ŧ": "T",
    "ŋ": "ng", "Ŋ": "NG",
    "ĸ": "q",
    "ſ": "s",
}

_TRANSLATE = str.maketrans({**PUNCTUATION_MAP, **LETTER_MAP})


def decode_unicode_escapes(text: str) -> str:
    """Replace literal ``\\uXXXX`` sequences by the characters they encode.

    A high surrogate followed by a low surrogate escape is combined into one
    character (``\\ud83c\\udfb5`` -> U+1F3B5); an unpaired surrogate cannot be
    encoded and is dropped.
    """
    def _replace(match: re.Match) -> str:
        return chr(int(match.group(1), 16))

    decoded = _ESCAPE.sub(_replace, text)
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in decoded):
        return decoded
    # Pair surrogates the way UTF-16 does; "surrogatepass" lets lone ones through so they can be removed.
    raw = decoded.encode("utf-16-le", "surrogatepass")
    paired = raw.decode("utf-16-le", "surrogatepass")
    return "".join(c for c in paired if not 0xD800 <= ord(c) <= 0xDFFF)


def normalize_text(text: str, drop_non_ascii: bool = False) -> str:
    """Normalise a string for a T5 prompt (see the module docstring for the rules).

    Parameters
    ----------
    text : str
        Any text, e.g. a tag value.
    drop_non_ascii : bool
        Also remove characters that are still not ASCII after transliteration
        (letters of non-Latin scripts, symbols). Default False: they are kept.

    Returns
    -------
    str
        The normalised text; ``""`` when nothing printable remains.
    """
    text = decode_unicode_escapes(text)
    text = text.translate(_TRANSLATE)
    text = "".join(" " if c.isspace() else c for c in text)
    text = unicodedata.normalize("NFKD", text)
    # NFKD can expose characters the first pass did not see (U+2011 -> U+2010, U+2033 -> two primes).
    text = text.translate(_TRANSLATE)
    kept = []
    for c in text:
        if unicodedata.combining(c):
            continue
        if c.isspace():
            kept.append(" ")
            continue
        if unicodedata.category(c).startswith("C"):
            continue
        if drop_non_ascii and ord(c) > 127:
            continue
        kept.append(c)
    return " ".join("".join(kept).split())
