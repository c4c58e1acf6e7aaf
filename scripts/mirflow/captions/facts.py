"""Facts about a track, taken from its computed features, and checks of captions against them.

A caption must never state something the features do not support. This module

* turns the merged feature values of a track into :class:`TrackFacts`: rounded
  numbers and qualitative words chosen by documented thresholds (below);
* renders the factual template captions (:func:`template_caption`), which are
  correct by construction;
* verifies any generated text against the facts (:func:`verify_caption`):
  every number, key, tempo word, genre, mood and instrument it mentions must be
  one the facts allow, and every note name or chord must lie in the key's scale
  (:data:`KEY_SCALES`);
* renders prompt templates with feature placeholders (:func:`render_prompt`).

Which features become which facts (a missing feature is simply not mentioned):

=================  ==========================================================
fact               source and rule
=================  ==========================================================
tempo              ``bpm`` rounded to an integer ("128 BPM"), only when
                   ``bpm_is_defined`` is 1. ``bpm_is_defined`` 0 gives the
                   fact "no steady beat" instead; ``bpm`` without
                   ``bpm_is_defined`` is not used (it cannot be trusted).
tempo class        slow below ``tempo_class_bpm[0]`` (default 90 BPM),
                   moderate below ``tempo_class_bpm[1]`` (120 BPM), else fast.
key                ``key`` (e.g. "A minor"); else ``tonic`` (pitch class 0-11,
                   spelled C C# D D# E F F# G G# A A# B) + ``tonic_scale``.
genre              ``essentia_genre`` (label -> p): labels with p >=
                   ``genre_min_p`` (0.1), best first, at most ``genre_top_n``
                   (2); "Electronic---Techno" is said "techno".
mood               ``essentia_mood``: p >= ``mood_min_p`` (0.3), at most 2;
                   "mood_happy" is said "happy"; "non_*"/"not_*" labels are
                   never used.
instruments        ``essentia_instrument``: p >= ``instrument_min_p`` (0.3),
                   at most 3; "drummachine" is said "drum machine".
tags               ``musicnn_tags``: p >= ``tag_min_p`` (0.3), at most 5;
                   tags that are tempo or loudness words ("fast", "loud", ...)
                   are dropped: the measured tempo and loudness say that.
loudness           ``lufs``: "quiet" below ``quiet_below`` (-20 LUFS), "loud"
                   from ``loud_from`` (-12 LUFS), nothing in between.
brightness         ``brightness`` (Audio Commons, 0-100): "mellow" below 40,
                   "bright" from 60, nothing in between.
drums              ``drum_density_total`` (hits/s): "no drums" at 0, "sparse
                   drums" below 2, "busy drums" from 6, nothing in between.
production         ``production_quality`` (Audiobox Aesthetics PQ, 1-10):
                   "lo-fi production" below 5, "polished production" from 7.5.
=================  ==========================================================

All thresholds are parameters (:class:`FactParams`).
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..labels import is_negative_label, rank_labels
from ..params import param, section
from ..templates import TemplateError, parse_template


@dataclass(frozen=True)
class LoudnessWords:
    """Where ``lufs`` is called quiet or loud."""

    quiet_below: float = param(-20.0, unit="LUFS", doc="'quiet' below this integrated loudness")
    loud_from: float = param(-12.0, unit="LUFS", doc="'loud' from this integrated loudness")


@dataclass(frozen=True)
class BrightnessWords:
    """Where ``brightness`` (Audio Commons, 0-100) is called mellow or bright."""

    mellow_below: float = param(40.0, minimum=0.0, maximum=100.0, doc="'mellow' below this brightness")
    bright_from: float = param(60.0, minimum=0.0, maximum=100.0, doc="'bright' from this brightness")


@dataclass(frozen=True)
class DrumDensityWords:
    """Where ``drum_density_total`` is called sparse or busy (0 is "no drums")."""

    sparse_below: float = param(2.0, unit="hits/s", minimum=0.0, doc="'sparse drums' below this density")
    busy_from: float = param(6.0, unit="hits/s", minimum=0.0, doc="'busy drums' from this density")


@dataclass(frozen=True)
class ProductionWords:
    """Where ``production_quality`` (Audiobox Aesthetics PQ, 1-10) is called lo-fi or polished."""

    lofi_below: float = param(5.0, doc="'lo-fi production' below this rating")
    polished_from: float = param(7.5, doc="'polished production' from this rating")


@dataclass(frozen=True)
class FactParams:
    """Thresholds and counts of the fact rules (module docstring): the ``facts`` section of ``captions_feature``
    and ``captions_flamingo``."""

    genre_min_p: float = param(0.1, minimum=0.0, maximum=1.0, doc="Genres need at least this probability")
    genre_top_n: int = param(2, minimum=0, doc="At most this many genres")
    mood_min_p: float = param(0.3, minimum=0.0, maximum=1.0, doc="Moods need at least this probability")
    mood_top_n: int = param(2, minimum=0, doc="At most this many moods")
    instrument_min_p: float = param(0.3, minimum=0.0, maximum=1.0, doc="Instruments need at least this probability")
    instrument_top_n: int = param(3, minimum=0, doc="At most this many instruments")
    tag_min_p: float = param(0.3, minimum=0.0, maximum=1.0, doc="MusiCNN tags need at least this probability")
    tag_top_n: int = param(5, minimum=0, doc="At most this many tags")
    # Integers as config.yaml wrote them (provenance unchanged); any number is accepted.
    tempo_class_bpm: tuple = param((90, 120), item=float, unit="BPM", minimum=0.0, length=2,
                                   doc="Tempo is 'slow' below the first, 'fast' from the second, else 'moderate'")
    loudness_lufs: LoudnessWords = section(LoudnessWords(), doc="Loudness words")
    brightness: BrightnessWords = section(BrightnessWords(), doc="Brightness words")
    drum_density_hits_per_s: DrumDensityWords = section(DrumDensityWords(), doc="Drum density words")
    production_quality: ProductionWords = section(ProductionWords(), doc="Production words")

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

#: Jamendo-style concatenated instrument labels and how a caption says them.
LABEL_SPELLING = {
    "acousticguitar": "acoustic guitar", "electricguitar": "electric guitar", "classicalguitar": "classical guitar",
    "acousticbassguitar": "acoustic bass guitar", "doublebass": "double bass", "drummachine": "drum machine",
    "electricpiano": "electric piano", "pipeorgan": "pipe organ", "rhodes": "rhodes piano",
}

#: Controlled words: a caption may use a word of a group only when the facts give that group.
TEMPO_WORDS = {
    "slow": ("slow", "slowly", "downtempo", "down-tempo", "leisurely", "sluggish", "unhurried"),
    "moderate": ("moderate", "moderately paced", "mid-tempo", "midtempo", "medium tempo", "medium-tempo"),
    "fast": ("fast", "fast-paced", "uptempo", "up-tempo", "upbeat", "brisk", "rapid", "quick"),
}
LOUDNESS_WORDS = {"quiet": ("quiet", "hushed", "soft"), "loud": ("loud", "booming")}
BRIGHTNESS_WORDS = {"mellow": ("mellow", "muffled", "dull"), "bright": ("bright", "brilliant", "crisp", "sparkling")}
DRUM_WORDS = {"no drums": ("no drums", "drumless", "without drums"), "sparse drums": ("sparse", "minimal"),
              "busy drums": ("busy", "dense", "driving")}
PRODUCTION_WORDS = {"lo-fi production": ("lo-fi", "lo fi", "lofi", "rough", "amateur", "low-quality", "low quality"),
                    "polished production": ("polished", "professional", "pristine", "high-quality", "high quality",
                                            "well-produced", "well produced")}
MODE_WORDS = {"major": ("major",), "minor": ("minor",)}
TEMPO_VALUE_WORDS = ("bpm", "beats per minute")

#: Genre, mood and instrument words a caption may only use when the facts contain them.
GENRE_VOCABULARY = (
    "rock", "pop", "jazz", "blues", "metal", "heavy metal", "punk", "techno", "house", "deep house", "tech house",
    "trance", "psytrance", "dubstep", "drum and bass", "drum n bass", "drum & bass", "jungle", "hip hop", "hip-hop",
    "rap", "trap", "r&b", "rnb", "soul", "funk", "disco", "reggae", "ska", "dub", "dancehall", "country", "folk",
    "classical", "baroque", "opera", "ambient", "electronic", "electronica", "edm", "electro", "idm", "breakbeat",
    "garage", "uk garage", "grime", "indie", "alternative", "grunge", "emo", "hardcore", "hardstyle", "gabber",
    "psychedelic", "synthwave", "synth-pop", "synthpop", "new wave", "post-punk", "post-rock", "shoegaze",
    "industrial", "gothic", "goth", "latin", "salsa", "bossa nova", "samba", "tango", "flamenco", "cumbia",
    "reggaeton", "gospel", "soundtrack", "orchestral", "cinematic", "afrobeat", "afrobeats", "chillout",
    "lounge", "trip hop", "trip-hop", "lo-fi hip hop", "minimal techno", "acid", "acid house", "big beat",
    "eurodance", "italo disco", "k-pop", "j-pop", "bluegrass", "americana", "swing", "bebop", "fusion",
    "jazz fusion", "smooth jazz", "world", "new age", "experimental", "noise", "drone", "downtempo",
    "progressive house", "progressive trance", "progressive rock", "hard rock", "punk rock", "pop rock",
    "dream pop", "art pop", "chiptune", "vaporwave", "future bass", "glitch", "footwork", "juke", "krautrock",
    "dance", "club", "rave", "metalcore", "death metal", "black metal", "thrash", "doom", "stoner rock",
)
MOOD_VOCABULARY = (
    "happy", "sad", "dark", "melancholic", "melancholy", "aggressive", "relaxed", "relaxing", "calm", "energetic",
    "uplifting", "romantic", "epic", "dreamy", "angry", "peaceful", "emotional", "hopeful", "tense", "joyful",
    "cheerful", "somber", "sombre", "gloomy", "playful", "nostalgic", "mysterious", "sentimental", "intense",
    "soothing", "chill", "chilled", "party", "sexy", "funny", "meditative", "inspiring", "motivational", "euphoric",
    "hypnotic", "haunting", "ominous", "eerie", "triumphant", "serene", "tender", "bittersweet", "moody",
    "atmospheric", "ethereal", "groovy", "funky", "fun", "powerful", "heavy", "soft", "warm", "cold", "lively",
)
INSTRUMENT_VOCABULARY = (
    "guitar", "acoustic guitar", "electric guitar", "bass guitar", "bass", "bassline", "double bass", "piano",
    "electric piano", "keyboard", "keys", "synth", "synthesizer", "synthesiser", "pad", "drum", "drum machine",
    "drum kit", "percussion", "violin", "viola", "cello", "strings", "string section", "orchestra", "saxophone",
    "sax", "trumpet", "trombone", "horn", "brass", "flute", "clarinet", "oboe", "bassoon", "harp", "organ",
    "accordion", "harmonica", "banjo", "mandolin", "ukulele", "vocal", "vocals", "voice", "singer", "singing",
    "choir", "rapper", "bells", "bell", "marimba", "xylophone", "vibraphone", "sitar", "tabla", "bongo", "bongos",
    "congas", "sampler", "turntable", "turntables", "808", "harpsichord", "glockenspiel", "timpani", "kick",
    "snare", "hi-hat", "hi-hats", "claps", "handclaps", "vocalist",
)
#: Words claiming that a track has no vocals: only when a tag says so.
NO_VOCALS_WORDS = ("instrumental", "a cappella", "a capella", "acapella", "no vocals", "without vocals")
_NO_VOCALS_TAGS = {"instrumental", "no vocals", "no vocal", "no voice"}
#: Synonyms accepted for a fact phrase (the caption may say either).
SYNONYMS = {
    "synthesizer": ("synth", "synths", "synthesiser", "synthesizers"),
    "drums": ("drum", "drum kit", "percussion", "beat", "beats"),
    "drum machine": ("drum machines", "drums", "drum", "beat", "beats", "808"),
    "voice": ("vocal", "vocals", "singing", "singer", "vocalist"),
    "vocal": ("vocals", "voice", "singing", "singer", "vocalist"),
    "keyboard": ("keys", "keyboards"),
    "electronic": ("electronica",),
    "hip hop": ("hip-hop",),
    "drum n bass": ("drum and bass", "drum & bass", "dnb"),
    "rhodes piano": ("electric piano", "rhodes"),
    "saxophone": ("sax",),
    "bass": ("bassline", "bass line"),
}
#: Genre-dict styles too generic to forbid in a caption.
_GENERIC_STYLES = {"instrumental", "vocal", "theme", "score", "musical", "story", "education", "interview",
                   "poetry", "comedy", "spoken word", "field recording", "ballad"}
#: Spelled-out numbers a caption must not contain (a number must be a digit that the facts contain).
NUMBER_WORDS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred",
                "thousand")

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")
_KEY_MENTION = re.compile(
    r"(?<![A-Za-z])([A-G])\s?(#|♯|b|♭|-sharp| sharp|-flat| flat)?\s?(major|minor|maj|min)\b"
    r"|(?<![A-Za-z])([A-G])(#|b)?m(?![A-Za-z0-9])")  # "Am" is a key, "Am7" a chord
# A note name or chord symbol: "F#", "Eb", "B-flat", "Cmaj7", "G7", "Bdim" (keys are matched by _KEY_MENTION first).
_NOTE_MENTION = re.compile(
    r"(?<![-A-Za-z0-9#♯♭'])([A-G])(#|♯|b|♭|-sharp| sharp|-flat| flat)?"
    r"(maj7|maj|min7|min|m7|m|dim7|dim|aug|sus2|sus4|add9|7|6|9)?(?![-A-Za-z0-9#♯♭'])")
#: Intervals (semitones above the root) of the chord a suffix names; no suffix names a single note.
_CHORD_INTERVALS = {"": (0,), "maj": (0, 4, 7), "maj7": (0, 4, 7, 11), "7": (0, 4, 7, 10), "6": (0, 4, 7, 9),
                    "9": (0, 4, 7, 10, 2), "add9": (0, 4, 7, 2), "m": (0, 3, 7), "min": (0, 3, 7),
                    "m7": (0, 3, 7, 10), "min7": (0, 3, 7, 10), "dim": (0, 3, 6), "dim7": (0, 3, 6, 9),
                    "aug": (0, 4, 8), "sus2": (0, 2, 7), "sus4": (0, 5, 7)}
#: Pitch classes (above the tonic) a key admits: the major scale; for minor the natural minor scale plus the
#: raised 6th and 7th of melodic/harmonic minor (the dominant chord of a minor key is major).
KEY_SCALES = {"major": frozenset({0, 2, 4, 5, 7, 9, 11}), "minor": frozenset({0, 2, 3, 5, 7, 8, 9, 10, 11})}


@dataclass(frozen=True)
class TrackFacts:
    """What a caption may say about a track, from its features.

    Attributes
    ----------
    genres, moods, instruments, tags : tuple of str
        Phrases as a caption says them, best first.
    bpm : int or None
        Rounded tempo, BPM; None when not trustworthy or missing.
    tempo_class : str or None
        "slow", "moderate" or "fast".
    steady_beat : bool or None
        False when ``bpm_is_defined`` is 0 ("no steady beat").
    key : str or None
        E.g. "A minor".
    loudness, brightness, drums, production : str or None
        Qualitative words (module docstring).
    genre_parents : tuple of str
        Parent genres of the chosen genre labels ("electronic" of
        "Electronic---Techno"): allowed in a caption, not stated by templates.
    label_vocabulary : dict of str to frozenset of str
        Every label of the track's genre, mood and instrument dicts, cleaned:
        a caption may not use one that is not a fact.
    sources : dict of str to str
        Fact name -> the feature keys it came from (for ``_meta``).
    """

    genres: tuple[str, ...] = ()
    moods: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    bpm: int | None = None
    tempo_class: str | None = None
    steady_beat: bool | None = None
    key: str | None = None
    loudness: str | None = None
    brightness: str | None = None
    drums: str | None = None
    production: str | None = None
    genre_parents: tuple[str, ...] = ()
    label_vocabulary: dict[str, frozenset[str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def has_describable_content(self) -> bool:
        """True when there is a tempo (or "no steady beat"), a key, or any genre/mood/instrument/tag."""
        return bool(self.bpm is not None or self.steady_beat is False or self.key
                    or self.genres or self.moods or self.instruments or self.tags)

    def fact_lines(self) -> list[str]:
        """The facts as "name: value" lines, in the order a prompt lists them."""
        lines = []
        if self.genres:
            lines.append(f"genre: {join_words(self.genres)}")
        if self.moods:
            lines.append(f"mood: {', '.join(self.moods)}")
        if self.bpm is not None:
            lines.append(f"tempo: {self.bpm} BPM ({self.tempo_class})")
        elif self.steady_beat is False:
            lines.append("tempo: no steady beat")
        if self.key:
            lines.append(f"key: {self.key}")
        if self.instruments:
            lines.append(f"instruments: {', '.join(self.instruments)}")
        if self.tags:
            lines.append(f"tags: {', '.join(self.tags)}")
        for name, value in (("loudness", self.loudness), ("brightness", self.brightness),
                            ("drums", self.drums), ("production", self.production)):
            if value:
                lines.append(f"{name}: {value}")
        return lines


# ------------------------------------------------------------------ features -> facts

def _number(features: Mapping[str, Any], key: str) -> float | None:
    value = features.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"feature {key!r} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"feature {key!r} is not finite ({value!r})")
    return float(value)


def _label_probabilities(features: Mapping[str, Any], key: str) -> dict[str, float]:
    value = features.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"feature {key!r} must be a dict label -> probability, got {type(value).__name__}")
    out = {}
    for label, p in value.items():
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(float(p)):
            raise ValueError(f"feature {key!r}: probability of {label!r} must be a finite number, got {p!r}")
        out[str(label)] = float(p)
    return out


def clean_label(label: str) -> str:
    """How a caption says a classifier label.

    "Electronic---Techno" -> "techno" (the style, not the parent);
    "mood_happy" -> "happy"; "acousticguitar" -> "acoustic guitar";
    underscores become spaces; lower case.
    """
    text = label.split("---")[-1]
    text = re.sub(r"^(mood|genre|instrument|moodtheme)[_/-]", "", text.strip(), flags=re.IGNORECASE)
    text = text.replace("_", " ").strip().lower()
    text = LABEL_SPELLING.get(text.replace(" ", ""), text)
    return re.sub(r"\s+", " ", text)


def genre_parents(label: str) -> list[str]:
    """Parent genres named in a Discogs-style label: "Funk / Soul---Soul" -> ["funk", "soul"]."""
    if "---" not in label:
        return []
    parent = label.split("---")[0]
    return [p.strip().lower() for p in re.split(r"[/,&]", parent) if p.strip()]


def top_labels(probabilities: Mapping[str, float], min_p: float, top_n: int) -> list[tuple[str, float]]:
    """Labels with p >= ``min_p``, at most ``top_n``, negatives dropped, ranked by
    :func:`mirflow.labels.rank_labels`."""
    return rank_labels(probabilities, min_p, top_n, drop_negative=True)


def _dedupe(words: list[str]) -> tuple[str, ...]:
    seen, out = set(), []
    for word in words:
        if word and word not in seen:
            seen.add(word)
            out.append(word)
    return tuple(out)


def key_label(features: Mapping[str, Any]) -> tuple[str | None, str]:
    """(key as "A minor", source feature keys) from ``key`` or else ``tonic`` + ``tonic_scale``."""
    key = features.get("key")
    if isinstance(key, str) and key.strip():
        parsed = parse_key(key.strip())
        if parsed is None:
            raise ValueError(f"feature 'key' is not a key label like 'A minor': {key!r}")
        return key.strip(), "key"
    tonic, scale = features.get("tonic"), features.get("tonic_scale")
    if tonic is not None and scale is not None:
        if isinstance(tonic, bool) or not isinstance(tonic, int) or not 0 <= tonic <= 11:
            raise ValueError(f"feature 'tonic' must be a pitch class 0-11, got {tonic!r}")
        if scale not in ("major", "minor"):
            raise ValueError(f"feature 'tonic_scale' must be 'major' or 'minor', got {scale!r}")
        return f"{PITCH_CLASS_NAMES[tonic]} {scale}", "tonic, tonic_scale"
    return None, ""


def _class_of(value: float, low: float, high: float, below: str, above: str) -> str | None:
    if value < low:
        return below
    if value >= high:
        return above
    return None


def build_facts(features: Mapping[str, Any], params: FactParams = FactParams()) -> TrackFacts:
    """Facts of a track from its merged feature values (rules in the module docstring).

    Parameters
    ----------
    features : mapping
        Feature key -> value as in the track's ``.INFO`` (numbers, strings,
        dicts label -> probability). Missing keys are simply not described.
    params : FactParams, optional
        Thresholds and counts of the rules.

    Returns
    -------
    TrackFacts

    Raises
    ------
    ValueError
        If a present feature has the wrong type (a bug upstream, never hidden).
    """
    p = params
    sources: dict[str, str] = {}
    vocab: dict[str, set[str]] = {"genre": set(), "mood": set(), "instrument": set()}

    genre_probs = _label_probabilities(features, "essentia_genre")
    vocab["genre"] |= {clean_label(label) for label in genre_probs} - _GENERIC_STYLES
    genre_top = top_labels(genre_probs, p.genre_min_p, p.genre_top_n)
    genres = _dedupe([clean_label(label) for label, _ in genre_top])
    parents = _dedupe([g for label, _ in genre_top for g in genre_parents(label)])
    if genres:
        sources["genre"] = "essentia_genre"

    mood_probs = _label_probabilities(features, "essentia_mood")
    vocab["mood"] |= {clean_label(label) for label in mood_probs if not is_negative_label(label)}
    moods = _dedupe([clean_label(label) for label, _ in top_labels(mood_probs, p.mood_min_p, p.mood_top_n)])
    if moods:
        sources["mood"] = "essentia_mood"

    inst_probs = _label_probabilities(features, "essentia_instrument")
    vocab["instrument"] |= {clean_label(label) for label in inst_probs if not is_negative_label(label)}
    instruments = _dedupe([clean_label(label) for label, _ in
                           top_labels(inst_probs, p.instrument_min_p, p.instrument_top_n)])
    if instruments:
        sources["instruments"] = "essentia_instrument"

    controlled = {w for group in (TEMPO_WORDS, LOUDNESS_WORDS, BRIGHTNESS_WORDS) for ws in group.values() for w in ws}
    tag_probs = {label: prob for label, prob in _label_probabilities(features, "musicnn_tags").items()
                 if clean_label(label) not in controlled}
    tags = _dedupe([clean_label(label) for label, _ in top_labels(tag_probs, p.tag_min_p, p.tag_top_n)])
    tags = tuple(t for t in tags if t not in genres and t not in moods and t not in instruments)
    if tags:
        sources["tags"] = "musicnn_tags"

    bpm = tempo_class = steady = None
    bpm_value = _number(features, "bpm")
    defined = features.get("bpm_is_defined")
    if defined is not None and defined not in (0, 1):
        raise ValueError(f"feature 'bpm_is_defined' must be 0 or 1, got {defined!r}")
    if defined == 1 and bpm_value is not None:
        bpm = int(round(bpm_value))
        low, high = p.tempo_class_bpm
        tempo_class = "slow" if bpm < low else ("moderate" if bpm < high else "fast")
        sources["tempo"] = "bpm, bpm_is_defined"
    elif defined == 0:
        steady = False
        sources["tempo"] = "bpm_is_defined"

    key, key_source = key_label(features)
    if key:
        sources["key"] = key_source

    def threshold_class(fact: str, key: str, low: float, high: float, below: str, above: str) -> str | None:
        value = _number(features, key)
        if value is None:
            return None
        label = _class_of(value, low, high, below, above)
        if label:
            sources[fact] = key
        return label

    drums = None
    loudness = threshold_class("loudness", "lufs", p.loudness_lufs.quiet_below, p.loudness_lufs.loud_from,
                               "quiet", "loud")
    brightness = threshold_class("brightness", "brightness", p.brightness.mellow_below, p.brightness.bright_from,
                                 "mellow", "bright")
    density = _number(features, "drum_density_total")
    if density is not None:
        t = p.drum_density_hits_per_s
        drums = "no drums" if density == 0 else _class_of(density, t.sparse_below, t.busy_from,
                                                           "sparse drums", "busy drums")
        if drums:
            sources["drums"] = "drum_density_total"
    production = threshold_class("production", "production_quality", p.production_quality.lofi_below,
                                 p.production_quality.polished_from, "lo-fi production", "polished production")

    return TrackFacts(genres=genres, moods=moods, instruments=instruments, tags=tags, bpm=bpm,
                      tempo_class=tempo_class, steady_beat=steady, key=key, loudness=loudness,
                      brightness=brightness, drums=drums, production=production, genre_parents=parents,
                      label_vocabulary={k: frozenset(v) for k, v in vocab.items()}, sources=sources)


# ------------------------------------------------------------------ templates

def join_words(words: tuple[str, ...] | list[str], conjunction: str = "and") -> str:
    """"a", "a and b", "a, b and c"."""
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _descriptors(facts: TrackFacts) -> list[str]:
    out = []
    mix = [w for w in (facts.loudness, facts.brightness) if w]
    if mix:
        out.append(f"{_article(mix[0])} {' and '.join(mix)} mix")
    if facts.drums:
        out.append(facts.drums)
    if facts.production:
        out.append(facts.production)
    if facts.steady_beat is False:
        out.append("no steady beat")
    return out


def template_caption(facts: TrackFacts, style: str) -> str:
    """The deterministic caption of ``style`` ("sentence", "detailed" or "tags"); states only facts.

    Raises
    ------
    ValueError
        For an unknown style, or facts with nothing to describe.
    """
    if not facts.has_describable_content():
        raise ValueError("no tempo, key or tag facts to describe")
    if style == "tags":
        words = [*facts.genres, *facts.moods, *facts.instruments, *facts.tags]
        if facts.bpm is not None:
            words += [f"{facts.bpm} bpm", f"{facts.tempo_class} tempo"]
        if facts.key:
            words.append(facts.key.lower())
        words += [w for w in (facts.loudness, facts.brightness, facts.drums, facts.production) if w]
        if facts.steady_beat is False:
            words.append("no steady beat")
        return ", ".join(_dedupe(words))
    if style == "sentence":
        head = ", ".join(facts.moods)
        noun = f"{join_words(facts.genres)} track" if facts.genres else "track"
        phrase = f"{head} {noun}" if head else noun
        text = f"{_article(phrase).capitalize()} {phrase}"
        if facts.bpm is not None:
            text += f" at {facts.bpm} BPM"
        if facts.key:
            text += f" in {facts.key}"
        extras = []
        if facts.tags and not facts.genres:
            extras.append(f"tagged {join_words(facts.tags)}")
        if facts.instruments:
            extras.append(f"featuring {join_words(facts.instruments)}")
        described = _descriptors(facts)
        if described:
            extras.append(f"with {join_words(described)}")
        return text + (", " + ", ".join(extras) if extras else "") + "."
    if style == "detailed":
        sentences = []
        if facts.genres:
            lead = f"This is {_article(facts.genres[0])} {join_words(facts.genres)} track"
            sentences.append(lead + (f" with {_article(facts.moods[0])} {join_words(facts.moods)} mood."
                                     if facts.moods else "."))
        elif facts.moods:
            sentences.append(f"This track has {_article(facts.moods[0])} {join_words(facts.moods)} mood.")
        if facts.bpm is not None:
            sentences.append(f"It moves at {facts.bpm} BPM, a {facts.tempo_class} tempo"
                             + (f", in {facts.key}." if facts.key else "."))
        elif facts.steady_beat is False:
            sentences.append("It has no steady beat" + (f" and is in {facts.key}." if facts.key else "."))
        elif facts.key:
            sentences.append(f"It is in {facts.key}.")
        if facts.instruments:
            sentences.append(f"The instrumentation features {join_words(facts.instruments)}.")
        if facts.tags:
            sentences.append(f"It is tagged {join_words(facts.tags)}.")
        mix = [w for w in (facts.loudness, facts.brightness) if w]
        if mix:
            sentences.append(f"The mix is {' and '.join(mix)}.")
        if facts.drums:
            sentences.append("There are no drums." if facts.drums == "no drums"
                             else f"The drums are {facts.drums.split()[0]}.")
        if facts.production:
            sentences.append(f"The track has {facts.production}.")
        return " ".join(sentences)
    raise ValueError(f"unknown caption style {style!r} (expected sentence, detailed or tags)")


# ------------------------------------------------------------------ verification

def parse_key(text: str) -> tuple[int, str] | None:
    """(pitch class, "major"/"minor") of a key written like "A minor", "F# major", "Bb min" or "Am"."""
    match = _KEY_MENTION.fullmatch(text.strip())
    return _key_from_match(match) if match else None


def _key_from_match(match: re.Match) -> tuple[int, str]:
    if match.group(1):
        letter, accidental, mode = match.group(1), match.group(2) or "", match.group(3)
    else:
        letter, accidental, mode = match.group(4), match.group(5) or "", "minor"
    shift = 1 if any(s in accidental for s in ("#", "♯", "sharp")) else (-1 if accidental.strip() else 0)
    mode = "major" if mode.lower().startswith("maj") else "minor"
    return (_LETTER_PC[letter] + shift) % 12, mode


def key_mentions(text: str) -> list[tuple[str, tuple[int, str]]]:
    """Every key written in ``text``: (as written, (pitch class, mode))."""
    return [(m.group(0), _key_from_match(m)) for m in _KEY_MENTION.finditer(text)]


def key_pitch_classes(key: tuple[int, str]) -> frozenset[int]:
    """The pitch classes (0 = C) a key admits (:data:`KEY_SCALES`), e.g. E-flat major: Eb F G Ab Bb C D."""
    tonic, mode = key
    return frozenset((tonic + step) % 12 for step in KEY_SCALES[mode])


def note_mentions(text: str) -> list[tuple[str, frozenset[int]]]:
    """Every note name or chord symbol written in ``text`` (outside key names): (as written, its pitch classes).

    A sentence-initial "A" before a lower-case word is the article ("A bright mix"), not the note. A bare note name
    stands for its own pitch class; a chord symbol ("Cmaj7", "Bdim", "F#m7") for every tone of the chord.
    """
    keys = [m.span() for m in _KEY_MENTION.finditer(text)]
    out = []
    for m in _NOTE_MENTION.finditer(text):
        if any(a <= m.start() < b for a, b in keys):
            continue
        letter, accidental, suffix = m.group(1), m.group(2) or "", m.group(3) or ""
        if letter == "A" and not suffix and accidental in ("", " sharp", " flat") and \
                re.match(r"\s+[a-z]", text[m.start() + 1:]) and re.search(r"(^|[.!?:;(\"]\s*)$", text[:m.start()]):
            continue  # the article: sentence-initial "A" before a word (mid-sentence the article is "a")
        shift = 1 if any(s in accidental for s in ("#", "♯", "sharp")) else (-1 if accidental else 0)
        root = (_LETTER_PC[letter] + shift) % 12
        out.append((m.group(0), frozenset((root + i) % 12 for i in _CHORD_INTERVALS[suffix])))
    return out


@dataclass(frozen=True)
class Allowed:
    """What a text may mention, and what it must mention.

    Attributes
    ----------
    numbers : frozenset of str
        Numbers as digits (e.g. "128").
    keys : frozenset of (int, str)
        Keys as (pitch class, mode).
    phrases : frozenset of str
        Lower-case phrases that may appear, including their synonyms.
    restricted : dict of str to frozenset of str
        Category -> phrases that need to be in ``phrases`` to appear.
    required : tuple of (str, tuple of str)
        (what, alternatives): the text must contain one of the alternatives
        (lower case).
    required_key : (int, str) or None
        A key the text must state (in any spelling, e.g. "A minor" or "Am").
    pitch_classes : frozenset of int
        Pitch classes a note name or chord in the text may use: the scale of the track's key
        (:func:`key_pitch_classes`). mirflow detects a key, not chords, so a note or chord outside the key's
        scale (a borrowed or chromatic chord, "F# and A" in E-flat major) is unsupported and rejected; with
        no key, no note name may appear.
    """

    numbers: frozenset[str]
    keys: frozenset[tuple[int, str]]
    phrases: frozenset[str]
    restricted: dict[str, frozenset[str]]
    required: tuple[tuple[str, tuple[str, ...]], ...] = ()
    required_key: tuple[int, str] | None = None
    pitch_classes: frozenset[int] = frozenset()


def _phrase_pattern(phrase: str) -> re.Pattern:
    return re.compile(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?:s|es)?(?![a-z0-9])")


def _with_synonyms(phrases) -> set[str]:
    out = set()
    for phrase in phrases:
        out.add(phrase)
        out.update(SYNONYMS.get(phrase, ()))
        if phrase.endswith("s"):
            out.update(SYNONYMS.get(phrase[:-1], ()))
    return out


def _restricted_vocabulary(label_vocabulary: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    groups: dict[str, Mapping[str, tuple[str, ...]]] = {
        "tempo": TEMPO_WORDS, "loudness": LOUDNESS_WORDS, "brightness": BRIGHTNESS_WORDS,
        "drums": DRUM_WORDS, "production": PRODUCTION_WORDS, "key mode": MODE_WORDS}
    restricted = {name: frozenset(w for ws in group.values() for w in ws) for name, group in groups.items()}
    restricted["tempo value"] = frozenset(TEMPO_VALUE_WORDS)
    restricted["vocals"] = frozenset(NO_VOCALS_WORDS)
    restricted["genre"] = frozenset(GENRE_VOCABULARY) | label_vocabulary.get("genre", frozenset())
    restricted["mood"] = frozenset(MOOD_VOCABULARY) | label_vocabulary.get("mood", frozenset())
    restricted["instrument"] = frozenset(INSTRUMENT_VOCABULARY) | label_vocabulary.get("instrument", frozenset())
    return restricted


def allowed_from_facts(facts: TrackFacts, require_core: bool = True) -> Allowed:
    """What a caption of ``facts`` may say; with ``require_core`` it must state tempo, key and top genre."""
    phrases = set(facts.genres) | set(facts.genre_parents) | set(facts.moods) | set(facts.instruments)
    phrases |= set(facts.tags)
    # the head noun of an instrument may stand for it ("guitar" for "acoustic guitar")
    phrases |= {inst.split()[-1] for inst in facts.instruments if " " in inst and inst.split()[-1] != "machine"}
    if _NO_VOCALS_TAGS & set(facts.tags):
        phrases |= set(NO_VOCALS_WORDS)
    for value, groups in ((facts.tempo_class, TEMPO_WORDS), (facts.loudness, LOUDNESS_WORDS),
                          (facts.brightness, BRIGHTNESS_WORDS), (facts.drums, DRUM_WORDS),
                          (facts.production, PRODUCTION_WORDS)):
        if value:
            phrases |= set(groups[value])
    if facts.drums in ("sparse drums", "busy drums"):
        phrases |= {"drums", "drum"}
    if facts.steady_beat is False:
        phrases |= {"no steady beat", "steady beat"}
    keys: set[tuple[int, str]] = set()
    if facts.key:
        parsed = parse_key(facts.key)
        assert parsed is not None, f"TrackFacts.key {facts.key!r} is not a key name (build_facts writes key_label's)"
        keys.add(parsed)
        phrases.add(parsed[1])
    numbers = set()
    if facts.bpm is not None:
        phrases |= set(TEMPO_VALUE_WORDS)
        numbers.add(str(facts.bpm))
    for phrase in phrases:
        numbers |= set(_NUMBER.findall(phrase))
    required: list[tuple[str, tuple[str, ...]]] = []
    if require_core:
        if facts.bpm is not None:
            required.append(("the tempo", (f"{facts.bpm} bpm", f"{facts.bpm} beats per minute")))
        if facts.genres:
            required.append(("the main genre", tuple(sorted(_with_synonyms([facts.genres[0]])))))
    return Allowed(numbers=frozenset(numbers), keys=frozenset(keys), phrases=frozenset(_with_synonyms(phrases)),
                   restricted=_restricted_vocabulary(facts.label_vocabulary), required=tuple(required),
                   required_key=parse_key(facts.key) if (require_core and facts.key) else None,
                   pitch_classes=frozenset().union(*(key_pitch_classes(k) for k in keys)))


def allowed_from_text(source: str, label_vocabulary: Mapping[str, frozenset[str]] | None = None) -> Allowed:
    """What a rewrite of ``source`` may say: only numbers, keys and controlled words ``source`` contains."""
    lower = source.lower()
    restricted = _restricted_vocabulary(label_vocabulary or {})
    phrases = {phrase for words in restricted.values() for phrase in words if _phrase_pattern(phrase).search(lower)}
    keys = frozenset(k for _, k in key_mentions(source))
    pitch_classes = frozenset().union(*(key_pitch_classes(k) for k in keys), *(pcs for _, pcs in note_mentions(source)))
    return Allowed(numbers=frozenset(_NUMBER.findall(source)), keys=keys, phrases=frozenset(_with_synonyms(phrases)),
                   restricted=restricted, pitch_classes=pitch_classes)


_META_TEXT = re.compile(
    r"\b(here'?s|here is|rephras\w*|rewrit\w*|caption|facts?|sentence|paragraph|as an ai|language model|"
    r"i cannot|i can't|note:|tags?:|genre:|tempo:|key:|mood:)", re.IGNORECASE)


def _sentence_count(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()])


def verify_caption(text: str, allowed: Allowed, max_words: int | None = None,
                   max_sentences: int | None = None) -> list[str]:
    """Problems of ``text`` against ``allowed``; an empty list means the caption may be stored.

    Checks: not empty; no meta talk ("Here's a rephrased version", "Facts:");
    every number is one of ``allowed.numbers`` (and no spelled-out tens or
    hundreds); every key written is one of ``allowed.keys``; every note name or chord symbol
    uses only ``allowed.pitch_classes`` (the key's scale); every controlled
    phrase (tempo, loudness, brightness, drum and production words, "major"/
    "minor", "BPM", genre, mood and instrument vocabulary) is allowed; the
    required facts appear; word and sentence limits.
    """
    problems = []
    stripped = text.strip()
    if not stripped:
        return ["empty"]
    if _META_TEXT.search(stripped) or "\n" in stripped or stripped.startswith(("-", "*", '"')):
        problems.append("talks about the task instead of the music, or is not plain prose")
    for number in _NUMBER.findall(stripped):
        if number not in allowed.numbers:
            problems.append(f"states the number {number}, which is not a fact")
    for word in NUMBER_WORDS:
        if re.search(rf"\b{word}", stripped, re.IGNORECASE):
            problems.append(f"spells out a number ({word})")
    for written, key in key_mentions(stripped):
        if key not in allowed.keys:
            problems.append(f"states the key {written!r}, which is not the track's key")
    for written, pitch_classes in note_mentions(stripped):
        if not pitch_classes <= allowed.pitch_classes:
            problems.append(f"names the note or chord {written!r}, which is outside the track's key"
                            if allowed.pitch_classes else f"names the note or chord {written!r}, but no key is known")
    lower = stripped.lower()
    # A controlled phrase inside an allowed one is fine ("bass" in an allowed "drum n bass"); one that only
    # overlaps or contains an allowed phrase is not ("deep house" when only "house" is a fact).
    allowed_spans = [m.span() for phrase in allowed.phrases for m in _phrase_pattern(phrase).finditer(lower)]
    reported: list[tuple[int, int]] = []
    controlled = sorted(((phrase, category) for category, words in allowed.restricted.items()
                         for phrase in words - allowed.phrases), key=lambda item: (-len(item[0]), item))
    for phrase, category in controlled:
        for match in _phrase_pattern(phrase).finditer(lower):
            start, end = match.span()
            if any(a <= start and end <= b for a, b in allowed_spans + reported):
                continue
            reported.append((start, end))
            problems.append(f"mentions {category} '{phrase}', which the features do not give")
    for what, alternatives in allowed.required:
        if not any(_phrase_pattern(alt).search(lower) for alt in alternatives):
            problems.append(f"does not state {what}")
    if allowed.required_key is not None and allowed.required_key not in [k for _, k in key_mentions(stripped)]:
        problems.append("does not state the key")
    if max_words is not None and len(stripped.split()) > max_words:
        problems.append(f"longer than {max_words} words")
    if max_sentences is not None and _sentence_count(stripped) > max_sentences:
        problems.append(f"more than {max_sentences} sentence(s)")
    return problems


# ------------------------------------------------------------------ prompt placeholders

def _probability_list(features: Mapping[str, Any], key: str, min_p: float, top_n: int) -> str | None:
    top = top_labels(_label_probabilities(features, key), min_p, top_n)
    return ", ".join(f"{clean_label(label)} ({p:.2f})" for label, p in top) or None


def _placeholder_bpm(features, p):
    facts = build_facts({k: features.get(k) for k in ("bpm", "bpm_is_defined")}, p)
    if facts.bpm is not None:
        return f"{facts.bpm} BPM"
    return "no steady beat" if facts.steady_beat is False else None


def _placeholder_key(features, p):
    return key_label(features)[0]


def _placeholder_lufs(features, p):
    lufs = _number(features, "lufs")
    return None if lufs is None else f"{lufs:.1f} LUFS"


#: Placeholder name -> (renderer(features, params) -> str or None, description).
PROMPT_PLACEHOLDERS = {
    "genres": (lambda f, p: _probability_list(f, "essentia_genre", p.genre_min_p, max(p.genre_top_n, 5)),
               "top essentia_genre labels with p, e.g. 'techno (0.62), house (0.21)'"),
    "moods": (lambda f, p: _probability_list(f, "essentia_mood", p.mood_min_p, max(p.mood_top_n, 3)),
              "top essentia_mood labels with p"),
    "instruments": (lambda f, p: _probability_list(f, "essentia_instrument", p.instrument_min_p,
                                                   max(p.instrument_top_n, 5)),
                    "top essentia_instrument labels with p"),
    "tags": (lambda f, p: _probability_list(f, "musicnn_tags", p.tag_min_p, p.tag_top_n),
             "top musicnn tags with p"),
    "bpm": (_placeholder_bpm, "rounded tempo '128 BPM' (only when bpm_is_defined is 1), or 'no steady beat'"),
    "key": (_placeholder_key, "key label, e.g. 'A minor'"),
    "lufs": (_placeholder_lufs, "integrated loudness, e.g. '-8.1 LUFS'"),
}
#: What a placeholder renders to when its feature is missing.
UNKNOWN = "unknown"


def placeholders_in(template: str) -> list[str]:
    """Names of the ``{placeholders}`` in ``template`` (the template language of :mod:`mirflow.templates`).

    Raises
    ------
    ConfigError
        On an unknown name, a positional ``{}``, attribute/index access, a
        conversion or a format spec, unbalanced braces or brackets.
    """
    try:
        segments = parse_template(template)
    except TemplateError as err:
        raise ConfigError(f"prompt template {template!r}: {err}.",
                          "write literal braces as {{ and }} and literal brackets as [[ and ]].") from err
    names = []
    for segment in segments:
        for _, name, spec, conversion in string.Formatter().parse(segment.text):
            if name is None:
                continue
            if name not in PROMPT_PLACEHOLDERS or spec or conversion:
                raise ConfigError(
                    f"prompt template {template!r} uses the placeholder "
                    f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}, "
                    f"which is not one of {sorted(PROMPT_PLACEHOLDERS)}.",
                    "use one of those names without a format spec, or write literal braces as {{ and }}.")
            names.append(name)
    return names


def render_prompt(template: str, features: Mapping[str, Any], params: FactParams = FactParams()) -> str:
    """Fill a prompt template's feature placeholders.

    The template language is the one of the training exports (:mod:`mirflow.templates`): a part in
    ``[...]`` is left out when one of its placeholders has no value ("[ Key: {key}.]"); a placeholder
    outside brackets whose feature is missing (or not trustworthy, like a tempo with
    ``bpm_is_defined`` 0... which renders "no steady beat") renders as the word ``unknown``, so write
    templates that read well either way ("Estimated tempo: {bpm}."). ``{{``/``}}`` and ``[[``/``]]``
    are literal braces and brackets.

    Parameters
    ----------
    template : str
        Prompt text with placeholders.
    features : mapping
        The track's merged feature values.
    params : FactParams, optional
        Label thresholds and counts.

    Raises
    ------
    ConfigError
        On an unknown placeholder or a malformed template (see :func:`placeholders_in`).
    """
    p = params
    placeholders_in(template)
    values: dict[str, str | None] = {}
    out = []
    for segment in parse_template(template):
        for name in segment.fields:
            if name not in values:
                values[name] = PROMPT_PLACEHOLDERS[name][0](features, p) or None
        if segment.optional and any(values[name] is None for name in segment.fields):
            continue
        out.append(segment.text.format(**{name: values[name] or UNKNOWN for name in segment.fields}))
    return "".join(out)
