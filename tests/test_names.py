"""Any file name the OS allows works, or fails only its own track with a clear message.

The dry runs build the real DAG (`snakemake -n`) over fake trees of generated names: the audio is never read,
so each example costs one parse (~2 s). One real run covers a handful of the nastiest names end to end.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from mirflow.names import NAME_SUFFIX_BYTES, snakemake_wildcard_in, unusable_reason
from mirflow.tracks import discover_tracks

SNAKEFILE = REPO / "workflow" / "Snakefile"
RESERVED = {"stats", "logs", "sat_index.json", "sat_config.json"}
OUR_FOLDERS = ["stems", "features", "logs", "crops", "stats", "full_mix", "results", "drums", "INFO"]


def _snakemake(workdir: Path, *args: str, config: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2", *args,
                           "--configfile", str(workdir / "config.yaml"), "--config", "input_dir=music",
                           "results_dir=results", *config], cwd=workdir, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})


def _job_counts(out: str) -> dict[str, int]:
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _tree(root: Path, names: list[str], content: bytes | None = None) -> None:
    for rel in names:
        path = root / "music" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.write_bytes(b"RIFF")  # never read by a dry run
        else:
            path.write_bytes(content)


# --- unit: what is set aside, and why ---------------------------------------------------------------------

@pytest.mark.parametrize("track_id, expected", [
    ("Intro" + "_" * 40, None),
    ("ab" * 60, None),
    ("new\nline", None),
    ("-rf --all", None),
    ("it's \"quoted\"", None),
    ("x{}", None), ("a{b c}", None), ("{", None),
    ("Album/features", None), ("Album/stems", None), ("Album/logs", None),
    ("br{ace}s", "'{ace}' in 'br{ace}s' reads as a Snakemake wildcard"),
    ("v{1.2}", "'{1.2}' in"),
    ("stats/a", "would overwrite the corpus outputs"),
    ("logs", "would overwrite the corpus outputs"),
    ("Album/crops/x", "inside the crops folder of track 'Album'"),
    ("é" * 112, "its name is 224 bytes long"),
])
def test_unusable_reason(track_id, expected):
    reason = unusable_reason(track_id, [f"/music/{track_id}.wav"], results_dir="results", reserved=RESERVED,
                             limit=255, track_ids={"Album", track_id})
    if expected is None:
        assert reason is None
    else:
        assert expected in reason


def test_longest_name_that_fits():
    fits = "x" * (255 - NAME_SUFFIX_BYTES)
    assert unusable_reason(fits, [], results_dir="r", reserved=RESERVED, limit=255) is None
    assert "shorten it to at most 223 bytes" in unusable_reason(fits + "x", [], results_dir="r",
                                                                 reserved=RESERVED, limit=255)


def test_brace_check_is_snakemakes_own():
    from snakemake.io import get_wildcard_names

    for text in ("a{b}", "a{{b}}", "{b,c}", "x{}", "a{b c}", "{.w}", "plain"):
        assert bool(snakemake_wildcard_in(text)) == bool(get_wildcard_names(text)), text


# --- generated names through the real DAG -------------------------------------------------------------------

_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
_piece = st.one_of(
    st.text(_char, min_size=1, max_size=12),
    st.builds(lambda c, n: c * n, st.sampled_from("a_-. é{}'\"\n~"), st.integers(15, 60)),  # runs of one char
    st.builds(lambda s, n: s * n, st.text(_char, min_size=2, max_size=4), st.integers(8, 30)),  # repeats
    st.sampled_from(OUR_FOLDERS),
    st.sampled_from(["-", "--", ".", "..", "'", '"', "{", "}", "{x}", "{}", "\n", "\t", " ", "$HOME", "*"]),
    st.builds(lambda s: unicodedata.normalize("NFD", s), st.sampled_from(["Café", "Ångström", "naïve"])),
)


def _fit(name: str, limit: int = 251) -> str:
    """Cut to at most ``limit`` UTF-8 bytes (the file system's 255 minus ".wav")."""
    return name.encode("utf-8")[:limit].decode("utf-8", "ignore") or "x"


_stem = st.one_of(
    st.lists(_piece, min_size=1, max_size=4).map("".join).map(_fit),
    st.builds(lambda c: c * 251, st.sampled_from("xé")).map(_fit),  # 255-byte file names
)
_relpath = st.one_of(
    _stem.map(lambda s: f"{s}.wav"),
    st.tuples(_stem, _stem).map(lambda p: f"{p[0]}/{p[1]}.wav"),
    st.tuples(_stem, st.sampled_from(["full_mix", "drums", "bass"])).map(lambda p: f"{p[0]}/{p[1]}.wav"),
)


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    return folder / "config.yaml"


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(names=st.lists(_relpath, min_size=1, max_size=10, unique=True))
def test_no_generated_name_aborts_the_dag(names, demo_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("names")
    (workdir / "config.yaml").write_text(demo_config.read_text())
    _tree(workdir, names)
    tracks = discover_tracks(workdir / "music", exclude_dirs=(str(workdir / "results"),))
    if not tracks:  # only hidden files (leading dot): discovery skips them, and the run says "no audio"
        proc = _snakemake(workdir, "-n")
        assert proc.returncode != 0 and "mirflow: no audio files" in proc.stdout + proc.stderr
        return
    ids = {t.id for t in tracks}
    unusable = {t.id for t in tracks if unusable_reason(t.id, [t.audio, *t.stems.values()], results_dir="results",
                                                         reserved=RESERVED, limit=255, track_ids=ids)}
    proc = _snakemake(workdir, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = _job_counts(out)
    # Every usable track gets its probe (in track_features) and its .INFO; every other one exactly one failing
    # job of its own.
    assert counts.get("track_info", 0) == counts.get("track_features", 0) == len(tracks) - len(unusable), \
        out[-3000:]
    assert counts.get("unusable_track", 0) == len(unusable)


@pytest.mark.slow
def test_handpicked_nasty_names_build_the_dag(tmp_path, demo_config):
    names = ["Intro" + "_" * 30 + ".flac", "ab" * 60 + ".wav", "new\nline.wav", "-rf --all.wav",
             "it's \"quoted\".wav", "x{}.wav", "br{ace}s.wav", "é" * 125 + ".wav", "Album/full_mix.wav",
             "Album/features.wav", "Album/stems.wav", "Album/crops/inside.wav", "stats/a.wav",
             unicodedata.normalize("NFC", "Café.wav"), unicodedata.normalize("NFD", "Café.wav"), "..hidden.wav"]
    (tmp_path / "config.yaml").write_text(demo_config.read_text())
    _tree(tmp_path, names)
    proc = _snakemake(tmp_path, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    counts = _job_counts(out)
    assert counts["unusable_track"] == 4  # br{ace}s, the 250-byte name, Album/crops/inside, stats/a
    assert counts["track_info"] == counts["track_features"] == 11  # the hidden file is skipped by design


@pytest.mark.slow
def test_real_run_on_nasty_names(tmp_path, demo_config):
    """The real workflow (two cheap families) on nasty names: the usable ones complete, each unusable one
    fails alone with its reason, and the run exits non-zero."""
    sr = 22050
    t = np.arange(int(sr * 1.5)) / sr
    buf = tmp_path / "tone.wav"
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    names = {"Intro" + "_" * 30: ".wav", "new\nline": ".wav", "-rf \"q\" it's": ".wav",
             unicodedata.normalize("NFD", "Café"): ".wav", "br{ace}s": ".wav"}
    (tmp_path / "config.yaml").write_text(demo_config.read_text())
    _tree(tmp_path, [n + e for n, e in names.items()], buf.read_bytes())
    fams = ", ".join(f"{f}: {'true' if f in ('loudness', 'metadata') else 'false'}"
                     for f in __import__("mirflow.registry", fromlist=["FAMILIES"]).FAMILIES)
    proc = _snakemake(tmp_path, "--keep-going", config=(f"families={{{fams}}}", "crops={enabled: false}"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for name in names:
        info = tmp_path / "results" / name / f"{name}.INFO"
        if "{" in name:
            assert not info.exists()
        else:
            assert "lufs" in info.read_text(encoding="utf-8"), out[-3000:]
    assert "input '" in out and "br{ace}s.wav' cannot be processed: '{ace}' in" in out


def test_set_aside_removes_only_the_unusable_tracks_and_keys_them_safely():
    from mirflow.names import set_aside, track_wildcard_values
    from mirflow.tracks import Track

    tracks = {i: Track(i, f"/music/{i}.wav") for i in ("Album/x", "br{ace}s", "stats/y", "a" * 30)}
    unusable = set_aside(tracks, results_dir="/tmp", reserved=RESERVED)
    assert sorted(tracks) == ["Album/x", "a" * 30]
    assert sorted(t.id for t, _reason in unusable.values()) == ["br{ace}s", "stats/y"]
    assert all(re.fullmatch(r"[0-9a-f]{16}", key) for key in unusable)
    assert track_wildcard_values(tracks.values()) == {"Album/x", "x", "Album/", "a" * 30, ""}
