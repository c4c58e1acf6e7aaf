"""Tag metadata read from generated, tagged FLAC/MP3/Ogg/Opus/WAV files, and every text-normaliser rule."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirflow.errors import InputAudioError
from mirflow.metadata import KEYS, compute_metadata, parse_year
from mirflow.textnorm import decode_unicode_escapes, normalize_text

SR = 44100


def _write_audio(path: Path, seconds: float = 1.0, sr: int = SR, **kwargs) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(path, np.stack([x, x], axis=1), sr, **kwargs)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _catalogue():
    from mirflow.catalogue import load_catalogue

    return load_catalogue()


def _check_complete(result):
    """Every key of the family has a value or a reason, and values have their catalogued types."""
    assert set(result.values) | set(result.absent) == set(KEYS)
    assert not set(result.values) & set(result.absent)
    cat = _catalogue()
    for key, value in result.values.items():
        cat.check_value(key, value)  # raises on a wrong type


# --------------------------------------------------------------------------- tags per format

def test_flac_vorbis_comments(tmp_path):
    from mutagen.flac import FLAC

    path = _write_audio(tmp_path / "song.flac")
    audio = FLAC(path)
    audio["artist"] = ["Sigur Rós", "Jónsi"]
    audio["title"] = "  Hoppípolla  "
    audio["album"] = "Takk…"
    audio["date"] = "2005-09-12"
    audio["genre"] = "Post-Rock"
    audio.save()
    before = (_sha(path), path.stat().st_mtime_ns)

    result = compute_metadata(str(path))

    assert result.values["track_metadata_artist"] == "Sigur Rós; Jónsi"  # raw text, both values
    assert result.values["track_metadata_title"] == "Hoppípolla"        # only surrounding space removed
    assert result.values["track_metadata_album"] == "Takk…"
    assert result.values["track_metadata_year"] == 2005
    assert result.values["track_metadata_genre"] == "Post-Rock"
    assert result.values["duration_s"] == 1.0
    assert result.values["sample_rate"] == SR
    assert result.values["channels"] == 2
    assert result.values["codec"] == "flac"
    assert result.meta["sha256"] == before[0]
    assert result.meta["size_bytes"] == path.stat().st_size
    assert result.meta["multi_valued_tags"] == {"artist": ["Sigur Rós", "Jónsi"]}
    assert result.meta["tag_format"] == "Vorbis comment" and result.meta["stream"]["source"] == "soundfile"
    assert (_sha(path), path.stat().st_mtime_ns) == before  # the input is never modified
    _check_complete(result)


def test_mp3_id3_tags_with_numeric_genre_and_v23_year(tmp_path):
    from mutagen.id3 import ID3, TALB, TCON, TIT2, TPE1, TYER

    path = _write_audio(tmp_path / "song.mp3", format="MP3")
    tags = ID3()
    tags.add(TPE1(encoding=3, text=["Motörhead"]))
    tags.add(TIT2(encoding=3, text=["Ace of Spades"]))
    tags.add(TALB(encoding=3, text=["Ace of Spades"]))
    tags.add(TCON(encoding=3, text=["(17)"]))      # ID3v1 genre reference 17 = Rock
    tags.add(TYER(encoding=3, text=["1980"]))      # ID3v2.3 year frame
    tags.save(path, v2_version=3)

    result = compute_metadata(str(path))

    assert result.values["track_metadata_artist"] == "Motörhead"
    assert result.values["track_metadata_title"] == "Ace of Spades"
    assert result.values["track_metadata_genre"] == "Rock"
    assert result.values["track_metadata_year"] == 1980
    assert result.values["codec"] == "mp3"
    assert result.meta["tag_format"] == "ID3"
    assert result.values["sample_rate"] == SR and result.values["channels"] == 2
    assert result.values["duration_s"] == pytest.approx(1.0, abs=0.06)  # MP3 frame granularity
    _check_complete(result)


def test_ogg_vorbis_and_opus(tmp_path):
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis

    ogg = _write_audio(tmp_path / "a.ogg", format="OGG", subtype="VORBIS")
    tags = OggVorbis(ogg)
    tags["ARTIST"] = "Björk"
    tags["TITLE"] = "Jóga"
    tags["DATE"] = "1997"
    tags.save()
    opus = _write_audio(tmp_path / "b.opus", sr=48000, format="OGG", subtype="OPUS")
    tags = OggOpus(opus)
    tags["artist"] = "Daft Punk"
    tags["year"] = "2001"                            # no DATE: the YEAR comment is the fallback
    tags.save()

    r_ogg = compute_metadata(str(ogg))
    r_opus = compute_metadata(str(opus))

    assert r_ogg.values["track_metadata_artist"] == "Björk"
    assert r_ogg.values["track_metadata_title"] == "Jóga"
    assert r_ogg.values["track_metadata_year"] == 1997
    assert r_ogg.values["codec"] == "vorbis"
    assert r_ogg.absent["track_metadata_album"] == "no album tag"
    assert r_ogg.absent["track_metadata_genre"] == "no genre tag"
    assert r_opus.values["track_metadata_artist"] == "Daft Punk"
    assert r_opus.values["track_metadata_year"] == 2001
    assert r_opus.meta["year_source"] == "year='2001'"
    assert r_opus.values["codec"] == "opus"
    assert r_opus.values["sample_rate"] == 48000
    _check_complete(r_ogg)
    _check_complete(r_opus)


def test_wav_with_id3_chunk_and_untagged_wav(tmp_path):
    from mutagen.id3 import TIT2, TPE1
    from mutagen.wave import WAVE

    tagged = _write_audio(tmp_path / "tagged.wav", subtype="PCM_24")
    wav = WAVE(tagged)
    wav.add_tags()
    wav.tags.add(TPE1(encoding=3, text=["Aphex Twin"]))
    wav.tags.add(TIT2(encoding=3, text=["Xtal"]))
    wav.save()
    plain = _write_audio(tmp_path / "plain.wav")

    r_tagged = compute_metadata(str(tagged))
    r_plain = compute_metadata(str(plain))

    assert r_tagged.values["track_metadata_artist"] == "Aphex Twin"
    assert r_tagged.values["track_metadata_title"] == "Xtal"
    assert r_tagged.values["codec"] == "pcm_24"
    assert r_tagged.meta["tag_format"] == "ID3v2.4"  # mutagen writes ID3v2.4 chunks into WAV
    assert r_tagged.absent["track_metadata_year"] == "no date tag"
    for tag in ("artist", "title", "album", "genre"):
        assert r_plain.absent[f"track_metadata_{tag}"] == f"no {tag} tag"
    assert r_plain.values["codec"] == "pcm_16"
    assert r_plain.values["duration_s"] == 1.0
    _check_complete(r_tagged)
    _check_complete(r_plain)


def test_date_without_a_year_is_absent_with_the_tag_text(tmp_path):
    from mutagen.flac import FLAC

    path = _write_audio(tmp_path / "x.flac")
    audio = FLAC(path)
    audio["date"] = "0000"
    audio["artist"] = "   "                        # whitespace only: no usable value
    audio.save()
    result = compute_metadata(str(path))
    assert result.absent["track_metadata_year"] == "date tag '0000' states no year"
    assert result.absent["track_metadata_artist"] == "no artist tag"


def test_missing_and_empty_files_fail_loudly(tmp_path):
    with pytest.raises(InputAudioError, match="does not exist"):
        compute_metadata(str(tmp_path / "nope.flac"))
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(InputAudioError, match="empty"):
        compute_metadata(str(empty))


@pytest.mark.parametrize("text, year", [
    ("1999", 1999), ("1999-03-02", 1999), ("1999-03-02T10:00:00", 1999), ("02/03/1999", 1999),
    ("2001/2002", 2001), ("0000", None), ("99", None), ("unknown", None), ("12345", None), ("", None),
])
def test_parse_year(text, year):
    assert parse_year(text) == year


def test_catalogue_part_lists_exactly_the_family_keys():
    assert sorted(_catalogue().keys_for_family("metadata")) == sorted(KEYS)


# --------------------------------------------------------------------------- text normalisation

@pytest.mark.parametrize("raw, expected", [
    # accents via NFKD + dropping combining marks
    ("Beyoncé Knowles", "Beyonce Knowles"), ("Sigur Rós – Hoppípolla", "Sigur Ros - Hoppipolla"),
    ("Motörhead", "Motorhead"), ("Dvořák", "Dvorak"), ("Ñandú", "Nandu"), ("Ångström", "Angstrom"),
    # letters without a decomposition
    ("Straße", "Strasse"), ("ẞ", "SS"), ("Mædchen Æther", "Maedchen AEther"), ("Røyksopp Ø", "Royksopp O"),
    ("Łódź", "Lodz"), ("Đorđe", "Dorde"), ("Guðrún", "Gudrun"), ("Þór þing", "Thor thing"),
    ("œuvre Œ", "oeuvre OE"), ("Kırmızı", "Kirmizi"),
    # compatibility forms
    ("ﬁne", "fine"), ("ＡＢＣ", "ABC"), ("½", "1/2"), ("™", "TM"),
    # literal \\uXXXX escapes
    ("Caf\\u00e9", "Cafe"), ("\\u0041\\u00DF", "Ass"),
    # dashes
    ("a\u2010b", "a-b"), ("a\u2011b", "a-b"), ("a\u2012b", "a-b"), ("a\u2013b", "a-b"), ("a\u2014b", "a--b"),
    ("a\u2015b", "a--b"), ("a\u2212b", "a-b"),
    # quotes
    ("\u2018it\u2019s\u2019", "'it's'"), ("\u201cquoted\u201d", '"quoted"'), ("\u201elow\u201c", '"low"'),
    ("\u00abguillemets\u00bb", '"guillemets"'), ("5\u2032 7\u2033", "5' 7\""), ("wait\u2026", "wait..."),
    # spaces
    ("a\u00a0b", "a b"), ("a\u202fb", "a b"), ("a\u2009b\u2007c", "a b c"), ("  a \t\n b  ", "a b"),
    ("soft\u00adhyphen", "softhyphen"), ("zero\u200bwidth\ufeff", "zerowidth"),
    # control and format characters
    ("bell\x07 null\x00", "bell null"), ("rtl\u202eover", "rtlover"), ("priv\ue000ate", "private"),
    # nothing left
    ("\u200b \x00", ""),
])
def test_normalize_text_rules(raw, expected):
    assert normalize_text(raw) == expected
    assert normalize_text(expected) == expected  # idempotent


def test_other_scripts_kept_unless_dropped():
    assert normalize_text("Кино — Группа крови") == "Кино -- Группа крови"
    assert normalize_text("Кино — Группа крови", drop_non_ascii=True) == "--"
    assert normalize_text("坂本龍一 Ryuichi Sakamoto", drop_non_ascii=True) == "Ryuichi Sakamoto"
    assert normalize_text("©2020", drop_non_ascii=True) == "2020"


def test_decode_unicode_escapes_pairs_surrogates_and_drops_lone_ones():
    assert decode_unicode_escapes("\\ud83c\\udfb5 note") == "\U0001F3B5 note"
    assert decode_unicode_escapes("bad \\ud83c end") == "bad  end"
    assert decode_unicode_escapes("no escapes") == "no escapes"
    assert normalize_text("\\ud83c\\udfb5 note", drop_non_ascii=True) == "note"
    assert normalize_text("\\u2014 \\u201cx\\u201d") == '-- "x"'
