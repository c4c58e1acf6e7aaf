"""Tag metadata and container facts of an audio file (family ``metadata``).

Reads the file's own tags with mutagen (ID3 in MP3/WAV/AIFF, Vorbis comments
in FLAC/Ogg/Opus, MP4 atoms in M4A) and its stream parameters from the header
(libsndfile through soundfile, the decoder the shared loader uses; mutagen for
formats libsndfile cannot open). Nothing is looked up on the network and the
file is only read.

Tag values are stored exactly as the file holds them (surrounding whitespace
stripped; several values of one tag joined with ``"; "``). They are NOT
normalised here: the ``.INFO`` is a faithful record, and the training exports
(``mirflow.exports``) normalise the strings they put into prompts with
:func:`mirflow.textnorm.normalize_text`. A tag the file does not carry is
absent with the reason ``"no <tag> tag"``; nothing is guessed from file or
folder names.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from .errors import InputAudioError
from .params import param
from .result import FeatureResult


@dataclass(frozen=True)
class MetadataParams:
    """Parameters of ``metadata`` (config section ``metadata``)."""

    # Two ARTIST comments, or a TPE1 frame with two strings, become one value.
    multi_value_separator: str = param("; ", doc="Separator between several values of one tag")

#: .INFO key -> the tag it comes from.
TAG_KEYS = {
    "track_metadata_artist": "artist",
    "track_metadata_title": "title",
    "track_metadata_album": "album",
    "track_metadata_genre": "genre",
}
YEAR_KEY = "track_metadata_year"
STREAM_KEYS = ("duration_s", "sample_rate", "channels", "codec")
KEYS = (*TAG_KEYS, YEAR_KEY, *STREAM_KEYS)

#: Raw ID3 frames for the tags, used where mutagen offers no "easy" view (WAV and AIFF carry raw ID3).
_ID3_FRAMES = {"artist": "TPE1", "title": "TIT2", "album": "TALB", "genre": "TCON", "date": "TDRC"}
#: Where a year can be found when there is no usable ``date`` tag, in order.
_ID3_YEAR_FALLBACK = ("TDRC", "TYER")
_VORBIS_YEAR_FALLBACK = ("year",)
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")

#: libsndfile (format, subtype) -> codec name. PCM subtypes keep their sample format ("pcm_16", "float").
_SOUNDFILE_CODECS = {"FLAC": "flac", "MP3": "mp3", "VORBIS": "vorbis", "OPUS": "opus",
                     "MPEG_LAYER_III": "mp3", "ALAC_16": "alac", "ALAC_24": "alac"}
_MUTAGEN_CODECS = {"FLAC": "flac", "MP3": "mp3", "EasyMP3": "mp3", "OggVorbis": "vorbis", "OggOpus": "opus",
                   "OggFLAC": "flac", "OggSpeex": "speex", "WavPack": "wavpack", "MonkeysAudio": "ape",
                   "AIFF": "pcm", "WAVE": "pcm"}


def sha256_of_file(path: str) -> str:
    """SHA-256 of a file's entire content (hex digest)."""
    from .models import sha256_file

    return sha256_file(path)


def parse_year(text: str) -> int | None:
    """The year of a date tag: the first standalone 4-digit group from 1000 to 2999.

    ``"1999"``, ``"1999-03-02"``, ``"1999-03-02T10:00"``, ``"02/03/1999"`` all give 1999.
    ``"0000"``, ``"99"`` or ``"unknown"`` give None (no year is stated).
    """
    for match in _YEAR.finditer(text):
        year = int(match.group(1))
        if 1000 <= year <= 2999:
            return year
    return None


def _as_strings(values: Any) -> list[str]:
    """Tag values as stripped, non-empty strings (mutagen gives lists of str or of frame text)."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)):
        values = [values]
    out = []
    for v in values:
        s = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        s = s.strip().strip("\x00").strip()
        if s:
            out.append(s)
    return out


def read_tags(path: str) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, Any]]:
    """Read the tags of an audio file.

    Parameters
    ----------
    path : str
        The audio file (only read).

    Returns
    -------
    tags : dict
        ``artist``, ``title``, ``album``, ``genre``, ``date`` -> list of values (only tags present and
        non-empty).
    year_fallbacks : dict
        Tag name (``TDRC``, ``TYER``, ``year``) -> values, consulted for the year when ``date`` gives none.
    facts : dict
        What mutagen found: ``container`` (mutagen class name or None), ``tag_format``, ``error``
        (why tags could not be read, when they could not), and stream facts (``length_s``,
        ``sample_rate``, ``channels``, ``bitrate_bps``, ``mp4_codec``) when mutagen knows them.
    """
    import mutagen
    from mutagen.id3 import ID3

    facts: dict[str, Any] = {"container": None, "tag_format": None}
    try:
        audio = mutagen.File(path, easy=True)
    except mutagen.MutagenError as err:
        facts["error"] = f"mutagen cannot parse the file: {err}"
        return {}, {}, facts
    if audio is None:
        facts["error"] = "mutagen does not recognise this file format"
        return {}, {}, facts
    facts["container"] = type(audio).__name__
    info = getattr(audio, "info", None)
    for attr, name in (("length", "length_s"), ("sample_rate", "sample_rate"), ("channels", "channels"),
                       ("bitrate", "bitrate_bps"), ("codec", "mp4_codec")):
        value = getattr(info, attr, None)
        if value is not None:
            facts[name] = value
    raw = audio.tags
    tags: dict[str, list[str]] = {}
    fallbacks: dict[str, list[str]] = {}
    if raw is None:
        facts["tag_format"] = "none"
        return tags, fallbacks, facts
    if isinstance(raw, ID3):
        # WAV/AIFF: mutagen exposes raw ID3 frames only.
        facts["tag_format"] = f"ID3v2.{raw.version[1]}"
        for name, frame_id in _ID3_FRAMES.items():
            frame = raw.get(frame_id)
            if frame is None:
                continue
            values = frame.genres if frame_id == "TCON" else frame.text
            tags[name] = _as_strings(values)
        for frame_id in _ID3_YEAR_FALLBACK:
            if frame_id in raw:
                fallbacks[frame_id] = _as_strings(raw[frame_id].text)
    else:
        facts["tag_format"] = _tag_format_name(type(raw).__name__)
        for name in ("artist", "title", "album", "genre", "date"):
            try:
                values = raw.get(name)
            except (KeyError, ValueError):
                values = None
            tags[name] = _as_strings(values)
        for name in _VORBIS_YEAR_FALLBACK:
            try:
                values = raw.get(name)
            except (KeyError, ValueError):
                # Easy ID3/MP4 views raise for keys they do not map; "year" is a Vorbis-comment convention.
                values = None
            if values:
                fallbacks[name] = _as_strings(values)
        if facts["container"] in ("EasyMP3", "MP3"):
            fallbacks.update(_raw_id3_year_frames(path))
    return {k: v for k, v in tags.items() if v}, {k: v for k, v in fallbacks.items() if v}, facts


def _tag_format_name(class_name: str) -> str:
    """A readable tag-format name for mutagen's tag class."""
    if "VComment" in class_name or class_name.startswith("VC"):
        return "Vorbis comment"
    return {"EasyID3": "ID3", "EasyMP4Tags": "MP4", "MP4Tags": "MP4", "APEv2": "APEv2"}.get(class_name, class_name)


def _raw_id3_year_frames(path: str) -> dict[str, list[str]]:
    """TDRC/TYER of an MP3 read without translation (EasyID3 only maps ``date`` to TDRC)."""
    from mutagen.id3 import ID3, ID3NoHeaderError

    try:
        raw = ID3(path, translate=False)
    except ID3NoHeaderError:
        return {}
    return {f: _as_strings(raw[f].text) for f in _ID3_YEAR_FALLBACK if f in raw}


def stream_facts(path: str, mutagen_facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], dict]:
    """Duration, sample rate, channels and codec from the file header.

    libsndfile (soundfile) is asked first, because the shared loader decodes with it; formats it
    cannot open (M4A/AAC, ALAC) fall back to what mutagen read from the container.

    Returns
    -------
    values : dict
        ``duration_s`` (s), ``sample_rate`` (Hz), ``channels`` (count), ``codec`` (lower-case name).
    absent : dict
        Key -> reason for facts neither reader could give.
    meta : dict
        ``source`` ("soundfile" or "mutagen") and the raw format/subtype.
    """
    import soundfile as sf

    values: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError) as err:
        meta["soundfile_error"] = str(err).strip()
        info = None
    if info is not None and info.samplerate > 0 and info.frames > 0:
        values["duration_s"] = round(info.frames / float(info.samplerate), 6)
        values["sample_rate"] = int(info.samplerate)
        values["channels"] = int(info.channels)
        codec = _SOUNDFILE_CODECS.get(info.subtype) or _SOUNDFILE_CODECS.get(info.format)
        values["codec"] = codec or info.subtype.lower()
        meta.update(source="soundfile", format=info.format, subtype=info.subtype)
    else:
        meta["source"] = "mutagen"
        length = mutagen_facts.get("length_s")
        if length is not None and length > 0:
            values["duration_s"] = round(float(length), 6)
        if mutagen_facts.get("sample_rate"):
            values["sample_rate"] = int(mutagen_facts["sample_rate"])
        if mutagen_facts.get("channels"):
            values["channels"] = int(mutagen_facts["channels"])
        codec = mutagen_facts.get("mp4_codec")
        if codec:
            values["codec"] = "aac" if str(codec).startswith("mp4a.40") else str(codec).lower()
        elif mutagen_facts.get("container") in _MUTAGEN_CODECS:
            values["codec"] = _MUTAGEN_CODECS[mutagen_facts["container"]]
    why = meta.get("soundfile_error") or mutagen_facts.get("error") or "not stated in the file header"
    absent = {k: f"unreadable header: {why}" for k in STREAM_KEYS if k not in values}
    return values, absent, meta


def compute_metadata(path: str, params: MetadataParams = MetadataParams()) -> FeatureResult:
    """Tag metadata and stream facts of one audio file.

    Parameters
    ----------
    path : str
        The input audio file. It is read, never modified.
    params : MetadataParams, optional
        How several values of one tag are joined.

    Returns
    -------
    FeatureResult
        Values: ``track_metadata_{artist,title,album,genre}`` (str, raw tag text),
        ``track_metadata_year`` (int, from ``date``, else ID3 TDRC/TYER or a Vorbis ``year``),
        ``duration_s`` (s), ``sample_rate`` (Hz), ``channels``, ``codec``. Absent tags have the
        reason ``"no <tag> tag"``. ``meta`` holds ``size_bytes``, ``sha256`` (entire file), the tag
        format and the reader of the stream facts.

    Raises
    ------
    InputAudioError
        If the file does not exist or is empty.
    """
    sep = params.multi_value_separator
    if not os.path.isfile(path):
        raise InputAudioError(path, "the file does not exist", "check the input folder and run again.")
    size = os.path.getsize(path)
    if size == 0:
        raise InputAudioError(path, "the file is empty (0 bytes)")
    result = FeatureResult()
    tags, year_fallbacks, facts = read_tags(path)
    no_tags = f" ({facts['error']})" if facts.get("error") else ""
    for key, tag in TAG_KEYS.items():
        if tag in tags:
            result.set(key, sep.join(dict.fromkeys(tags[tag])))
        else:
            result.mark_absent(key, f"no {tag} tag{no_tags}")
    year_source = None
    for source, candidates in [("date", tags.get("date", []))] + list(year_fallbacks.items()):
        for value in candidates:
            year = parse_year(value)
            if year is not None:
                result.set(YEAR_KEY, year)
                year_source = f"{source}={value!r}"
                break
        if year_source:
            break
    if year_source is None:
        seen = [v for vs in [tags.get("date", [])] + list(year_fallbacks.values()) for v in vs]
        reason = (f"date tag {seen[0]!r} states no year" if seen else f"no date tag{no_tags}")
        result.mark_absent(YEAR_KEY, reason)
    values, absent, stream_meta = stream_facts(path, facts)
    for key in STREAM_KEYS:
        if key in values:
            result.set(key, values[key])
        else:
            result.mark_absent(key, absent[key])
    result.meta.update({
        "input": os.path.abspath(path),
        "size_bytes": size,
        "sha256": sha256_of_file(path),
        "container": facts.get("container"),
        "tag_format": facts.get("tag_format"),
        "year_source": year_source,
        "stream": stream_meta,
    })
    if facts.get("bitrate_bps"):
        result.meta["bitrate_bps"] = int(facts["bitrate_bps"])
    multi = {tag: vals for tag, vals in tags.items() if len(vals) > 1}
    if multi:
        result.meta["multi_valued_tags"] = multi
    return result
