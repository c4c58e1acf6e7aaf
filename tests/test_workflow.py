"""End-to-end Snakemake runs in a temporary folder: outputs, minimal reruns, failure isolation, validation.

These tests run the real workflow (workflow/Snakefile) on a tiny corpus. The plan of a
run is read from `snakemake --summary` (one tab-separated row per output file with
"update pending" or "no update"), which applies the same rerun triggers as a real run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from mirflow.registry import FAMILIES

pytestmark = pytest.mark.slow
SNAKEFILE = REPO / "workflow" / "Snakefile"
SR = 22050
BAND = "Band, The 'Quoted' é"          # a track folder with stems and an awkward name
LOOSE = "Album/01 Café"                # a loose file
# What runs with this test's empty models folder: every family except those whose models are missing
# (SmolLM2 for captions_feature is fetched from PyPI during the run), and for tracks without stems only
# those that need no stems either.
NEED_MISSING_MODELS = {"drums", "aesthetics", "classifiers", "captions_flamingo"}
WITH_STEMS = set(FAMILIES) - NEED_MISSING_MODELS
# Steps that rerun after any track's .INFO changes: the step writing it (feature captions and the merge), its
# crops and the corpus-level outputs.
AFTER_INFO = {"track_info", "crops", "corpus_tracks", "corpus_report", "training_exports", "audiocraft_manifest"}
# The job layout (mirflow.layout) of a track without stems: the probe and the mix families in one job.
LOOSE_STEPS = {"track_features"}
CORPUS_OUTPUTS = ("results/stats/", "results/sat_", "results/audiocraft/")


def _tone_mix(seconds=3.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    drums = 0.3 * rng.standard_normal(t.size) * np.exp(-(t % 0.5) * 30)
    bass = 0.3 * np.sin(2 * np.pi * 55 * t)
    other = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    vocals = np.zeros_like(t)
    return {k: np.stack([v, v], axis=1).astype(np.float32)
            for k, v in {"drums": drums, "bass": bass, "other": other, "vocals": vocals}.items()}


def snakemake(workdir: Path, *args: str, env: dict | None = None, check: bool = True):
    # Targets and options come before --config, whose name=value list would swallow them.
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2", *args,
           "--config", "input_dir=music", "results_dir=results"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def plan(workdir: Path, *args: str, env: dict | None = None) -> set[tuple[str, str]]:
    """(rule, output path) of every job a run would execute now."""
    proc = snakemake(workdir, "--summary", *args, env=env)
    rows = [line.split("\t") for line in proc.stdout.splitlines() if line.count("\t") >= 5]
    return {(r[2], r[0]) for r in rows[1:] if r[5] != "no update"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("workflow")
    shutil.copytree(REPO / "config", wd / "config")
    # 2 s crops (88200 samples at the 44.1 kHz reference = 44100 samples at this corpus' 22.05 kHz).
    config = (wd / "config" / "config.yaml").read_text()
    assert "length_samples: 2097152" in config
    (wd / "config" / "config.yaml").write_text(config.replace("length_samples: 2097152", "length_samples: 88200"))
    stems = _tone_mix()
    band = wd / "music" / BAND
    band.mkdir(parents=True)
    for name, data in stems.items():
        sf.write(band / f"{name}.flac", data, SR)
    sf.write(band / "full_mix.flac", sum(stems.values()), SR)
    (wd / "music" / "Album").mkdir()
    sf.write(wd / "music" / f"{LOOSE}.ogg", sum(_tone_mix(seed=1).values()), SR)
    snakemake(wd)
    return wd


def _info(wd, track_id):
    name = track_id.rsplit("/", 1)[-1]
    return json.loads((wd / "results" / track_id / f"{name}.INFO").read_text(encoding="utf-8"))


def test_first_run_writes_info_with_mix_and_stem_keys(workdir):
    info = _info(workdir, BAND)
    for key in ("lufs", "lra", "spectral_flatness", "spectral_flux", "spectral_skewness", "spectral_kurtosis",
                "rms_energy_bass", "rms_energy_body", "rms_energy_mid", "rms_energy_air"):
        assert isinstance(info[key], float), key
    for stem in ("drums", "bass", "other"):
        assert isinstance(info[f"lufs_{stem}"], float) and isinstance(info[f"rms_energy_mid_{stem}"], float)
    prov = info["_provenance"]
    assert prov["absent"]["lufs_vocals"] == "silent stem"
    assert info["lufs_bass"] < info["lufs"]  # stems keep absolute levels
    assert set(prov["families"]) == WITH_STEMS
    assert "drums" in prov["missing_families"]  # no ADTOF weights in this test's models folder
    assert prov["inputs"][prov["families"]["loudness"]["inputs"]["audio"]]["sample_rate"] == SR
    loose = _info(workdir, LOOSE)
    assert "lufs" in loose and "lufs_drums" not in loose
    assert loose["_provenance"]["missing_families"]["loudness_stems"].startswith("no stems")
    text = (workdir / "results" / LOOSE / "01 Café.INFO").read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text


#: Every .INFO value of this corpus as computed before the family definitions moved into their modules and their
#: parameters became typed (issue 15): checked equal, key by key, to the code before (6ebcc2a) on this corpus
#: and on the demo. A deliberate change of values regenerates it: MIRFLOW_WRITE_INFO_VALUES=1 and this test.
INFO_VALUES = Path(__file__).parent / "fixtures" / "workflow_info_values.json"


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == pytest.approx(b, rel=1e-6,
                                                                                                     abs=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def test_every_info_key_and_value_is_the_one_recorded(workdir):
    got = {track: {k: v for k, v in _info(workdir, track).items() if not k.startswith("_")}
           for track in (BAND, LOOSE)}
    if os.environ.get("MIRFLOW_WRITE_INFO_VALUES"):
        INFO_VALUES.write_text(json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(INFO_VALUES.read_text(encoding="utf-8"))
    for track in expected:
        assert sorted(got[track]) == sorted(expected[track]), track
        changed = {k: (got[track][k], v) for k, v in expected[track].items() if not _close(got[track][k], v)}
        assert not changed, (track, changed)


def test_resolved_keys_fall_back_to_the_classic_algorithms_without_models(workdir):
    info = _info(workdir, BAND)
    prov = info["_provenance"]
    assert info["atonality"] == info["atonality_key_profile"]
    assert prov["resolved"]["atonality"]["source"] == "atonality_key_profile"
    assert prov["resolved"]["atonality"]["skipped"]["effnet_atonality"] == "family classifiers not computed"
    assert "none of the models essentia_discogs_effnet_bs64, essentia_msd_musicnn is present" in \
        prov["missing_families"]["classifiers"]
    # 3.5 s of audio: too short for the DFA (8.8 s), and no model head: absent, every source's reason listed.
    assert "danceability" not in info and "danceability_dfa" not in info
    assert prov["absent"]["danceability"].startswith("no source has a value: effnet_danceability: family classifiers")
    assert "danceability_dfa: too short (3.50 s < 8.8 s)" in prov["absent"]["danceability"]


def test_info_provenance_stores_each_reason_once_and_every_absent_key_keeps_its_reason(workdir):
    from mirflow.catalogue import load_catalogue
    from mirflow.provenance import absent_reasons

    path = workdir / "results" / BAND / f"{BAND}.INFO"
    info = json.loads(path.read_text(encoding="utf-8"))
    prov = info["_provenance"]
    text = path.read_text(encoding="utf-8")
    assert "models table above" not in text
    for fam, why in prov["missing_families"].items():
        assert text.count(why) == 1, (fam, why)   # once, not once per key
    reasons = absent_reasons(prov)
    cat = load_catalogue()
    for fam in set(prov["families"]) | set(prov["missing_families"]):
        for key in cat.keys_for_family(fam):
            assert key in info or reasons.get(key), key
    mix = prov["families"]["loudness"]["inputs"]["audio"]
    assert mix.endswith(f"{BAND}/full_mix.flac") and prov["families"]["spectral"]["inputs"]["audio"] == mix
    # Measured on the demo (20 s tracks, captions computed): ~65 KB before, see README "Measured".
    assert path.stat().st_size < 25_000, path.stat().st_size


def test_crops_have_their_own_values_boundaries_and_copied_keys_marked(workdir):
    from mirflow.features.rhythm import parse_times

    track_dir = workdir / "results" / BAND
    manifest = json.loads((track_dir / "crops" / "crops.json").read_text())
    assert manifest["crops"], manifest["plan"]
    beats = parse_times((track_dir / f"{BAND}.BEATS_GRID").read_text())
    track_info = _info(workdir, BAND)
    for crop in manifest["crops"]:
        info = json.loads((track_dir / "crops" / crop["info"]).read_text())
        assert info["end_sample"] - info["start_sample"] >= 0.75 * 44100
        assert info["start_time"] == pytest.approx(info["start_sample"] / SR, abs=1e-6)
        inside = beats[(beats >= info["start_time"]) & (beats < info["end_time"])] - info["start_time"]
        np.testing.assert_allclose(info["beats"], inside, atol=1e-6)
        if "beat_count" in info:
            assert info["beat_count"] == len(info["beats"])  # the crop's own count, never the track's
        data, sr = sf.read(track_dir / "crops" / crop["audio"])
        assert sr == SR and len(data) == info["end_sample"] - info["start_sample"]
        assert set(crop["stems"]) == {"drums", "bass", "other"}  # vocals skipped by default
        prov = info["_provenance"]
        assert "bass_note_count" in prov["copied_from_track"]
        assert info["bass_note_count"] == track_info["bass_note_count"]
        assert "lufs" in info and "lufs" not in prov["copied_from_track"]
        assert prov["absent"]["lufs_vocals"] == "stem not cropped (crops.skip_stems)"
        # Resolved from the crop's own keys: the classic atonality is computed on the crop.
        assert info["atonality"] == info["atonality_key_profile"] and "atonality" not in prov["copied_from_track"]
        assert prov["resolved"]["atonality"]["source"] == "atonality_key_profile"


def test_the_corpus_rules_read_one_list_of_every_tracks_info_and_crops(workdir):
    rows = (workdir / "results" / "stats" / "corpus_tracks.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "info\tcrops"
    expected = {(f"results/{t}/{t.rsplit('/', 1)[-1]}.INFO", f"results/{t}/crops") for t in (BAND, LOOSE)}
    assert {tuple(row.split("\t")) for row in rows[1:]} == expected


def test_second_run_has_nothing_to_do(workdir):
    assert plan(workdir) == set()
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_a_deleted_partial_is_computed_again_with_what_reads_it(workdir):
    # The merge and the crops declare only track_features' record (logs/probe.json), not its partials and grids:
    # at start-up a record whose step misses an output is removed, and Snakemake reruns the step for it.
    results = workdir / "results" / LOOSE
    partial = results / "features" / "loudness.json"
    before = json.loads(partial.read_text(encoding="utf-8"))
    partial.unlink()
    proc = snakemake(workdir, "-n")
    assert "1 track(s) miss outputs of step track_features" in proc.stderr
    assert not (results / "logs" / "probe.json").exists()
    jobs = plan(workdir)
    assert jobs and all(path.startswith((f"results/{LOOSE}/", *CORPUS_OUTPUTS)) for _, path in jobs), jobs
    assert {rule for rule, _ in jobs} == LOOSE_STEPS | AFTER_INFO
    snakemake(workdir)
    after = json.loads(partial.read_text(encoding="utf-8"))
    assert {k: v for k, v in after.items() if k != "_meta"} == {k: v for k, v in before.items() if k != "_meta"}
    log = (results / "logs" / "track_features.log").read_text(encoding="utf-8")
    assert "computed loudness in" in log and "kept spectral: computed before" in log
    assert plan(workdir) == set()


def _partials(wd):
    return {p.relative_to(wd / "results").as_posix(): p.read_bytes()
            for p in (wd / "results").glob("**/features/*.json")}


def test_changing_one_family_config_recomputes_only_that_family_and_what_reads_it(workdir):
    extra = workdir / "spectral_4096.yaml"
    extra.write_text("spectral:\n  frame_length: 4096\n  hop_length: 1024\n  window: hann\n")
    jobs = plan(workdir, "--configfile", "config/config.yaml", str(extra))
    # The steps holding spectral and spectral_stems rerun (crops compute spectral features on each crop too);
    # Basic Pitch reads the beat grid track_features writes, so Snakemake reruns it too (it keeps its result).
    assert {rule for rule, _ in jobs} == {"track_features", "stem_features", "bass_transcription"} | AFTER_INFO
    assert len({path for rule, path in jobs if rule == "track_features" and path.endswith("/spectral.json")}) == 2
    before = _partials(workdir)
    try:
        snakemake(workdir, "--configfile", "config/config.yaml", str(extra))
        after = _partials(workdir)
        # Inside those steps only spectral is computed again; every other family's partial is kept byte for byte,
        # except the feature captions, which read the spectral values.
        changed = {path.rsplit("/", 1)[1] for path in before if after[path] != before[path]}
        assert changed == {"spectral.json", "spectral_stems.json", "captions_feature.json"}, changed
        log = (workdir / "results" / LOOSE / "logs" / "track_features.log").read_text(encoding="utf-8")
        assert "computed spectral in" in log and "kept loudness: computed before" in log
    finally:
        snakemake(workdir)  # back to the configured spectral settings: spectral is computed again, nothing else
    restored = _partials(workdir)
    assert {p for p in before if restored[p] != before[p]} <= {p for p in before if p.endswith(
        ("/spectral.json", "/spectral_stems.json", "/captions_feature.json"))}


def test_changing_the_resolved_sources_reruns_only_merges_and_what_reads_them(workdir):
    extra = workdir / "resolved_classic.yaml"
    extra.write_text("resolved:\n  danceability: [danceability_dfa]\n  atonality: [atonality_key_profile]\n")
    jobs = plan(workdir, "--configfile", "config/config.yaml", str(extra))
    assert {rule for rule, _ in jobs} == AFTER_INFO


def test_bumping_a_family_version_reruns_only_that_family(workdir, tmp_path):
    shutil.copytree(REPO / "scripts" / "mirflow", tmp_path / "mirflow")
    declaration = tmp_path / "mirflow" / "features" / "multiband.py"  # the family declares itself (issue 15)
    text = declaration.read_text()
    assert 'name="multiband_rms", version=1,' in text
    declaration.write_text(text.replace('name="multiband_rms", version=1,', 'name="multiband_rms", version=2,'))
    jobs = plan(workdir, env={"PYTHONPATH": str(tmp_path)})
    assert {rule for rule, _ in jobs} == {"track_features", "stem_features", "bass_transcription"} | AFTER_INFO


def test_replacing_one_input_reruns_only_that_track(workdir):
    # Snakemake checksums inputs up to 1 MB: a small file reruns when its content changes.
    loose = workdir / "music" / f"{LOOSE}.ogg"
    sf.write(loose, sum(_tone_mix(seed=7).values()), SR)
    jobs = plan(workdir)
    assert jobs and all(path.startswith((f"results/{LOOSE}/", *CORPUS_OUTPUTS)) for _, path in jobs), jobs
    assert {rule for rule, _ in jobs} == LOOSE_STEPS | AFTER_INFO
    snakemake(workdir)
    assert plan(workdir) == set()


def test_adding_a_track_runs_only_its_jobs(workdir):
    # 6.5 s of float32 stereo WAV: > 1 MB, so a later test can show that touching a large file reruns it.
    sf.write(workdir / "music" / "new track.wav", sum(_tone_mix(seconds=6.5, seed=2).values()), SR,
             subtype="FLOAT")
    jobs = plan(workdir)
    assert jobs and all(path.startswith(("results/new track/", *CORPUS_OUTPUTS)) for _, path in jobs), jobs
    assert {rule for rule, _ in jobs} == LOOSE_STEPS | AFTER_INFO


def test_corrupt_and_empty_inputs_fail_only_their_own_track(workdir):
    music = workdir / "music"
    (music / "corrupt.flac").write_bytes(b"fLaC" + os.urandom(4000))
    (music / "empty.wav").write_bytes(b"")
    try:
        proc = snakemake(workdir, check=False)
        assert proc.returncode != 0, "a failed job must give a non-zero exit code"
        err = proc.stdout + proc.stderr
        assert "corrupt.flac" in err and "empty.wav" in err and "empty (0 bytes)" in err
        assert (workdir / "results" / "new track" / "new track.INFO").is_file()  # others completed
        from mirflow.summary import collect_failures

        failures = collect_failures(str(workdir / "results"))
        assert {f["track"] for f in failures} == {"corrupt", "empty"}
        for f in failures:  # no output of a failed step survives
            assert not (workdir / "results" / f["track"] / "features" / f"{f['step']}.json").exists(), f
        # Diagnosed once per track, by the probe; no family of a broken track starts.
        assert sorted((f["track"], f["step"]) for f in failures) == [("corrupt", "probe_audio"),
                                                                     ("empty", "probe_audio")]
        for bad in ("corrupt", "empty"):
            assert not (workdir / "results" / bad / f"{bad}.INFO").exists()
        assert "  tracks: 3 complete, 0 partial, 2 failed (of 5)" in err
    finally:
        (music / "corrupt.flac").unlink()
        (music / "empty.wav").unlink()


def test_touching_a_large_input_reruns_only_that_track(workdir):
    big = workdir / "music" / "new track.wav"
    assert big.stat().st_size > 1 << 20
    snakemake(workdir)  # the corpus report is pending after the failure test changed the set of tracks
    assert plan(workdir) == set()
    future = time.time() + 2
    os.utime(big, (future, future))
    jobs = plan(workdir)
    assert jobs and all(path.startswith(("results/new track/", *CORPUS_OUTPUTS)) for _, path in jobs), jobs
    assert {rule for rule, _ in jobs} == LOOSE_STEPS | AFTER_INFO


def test_config_errors_name_the_key(workdir):
    bad = workdir / "bad.yaml"
    bad.write_text("spectral:\n  frame_length: big\n  hop_length: 512\n  window: hann\n")
    proc = snakemake(workdir, "-n", "--configfile", "config/config.yaml", str(bad), check=False)
    assert proc.returncode != 0 and "frame_length" in proc.stdout + proc.stderr
    bad.write_text("spectal: {}\n")
    proc = snakemake(workdir, "-n", "--configfile", "config/config.yaml", str(bad), check=False)
    assert proc.returncode != 0 and "spectal" in proc.stdout + proc.stderr


def test_inputs_are_never_modified(workdir):
    music = workdir / "music"
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in music.rglob("*")}
    snakemake(workdir, "--forcerun", "track_features")
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in music.rglob("*")} == before


def test_workflow_lints_clean(workdir):
    proc = snakemake(workdir, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_stable_audio_module_on_the_workflows_own_outputs(workdir, monkeypatch):
    """The custom_metadata_module, loaded by file path as Stable Audio Tools does, on produced outputs."""
    import importlib.util

    snakemake(workdir)
    monkeypatch.setenv("MIRFLOW_SAT_CONFIG", str(workdir / "results" / "sat_config.json"))
    spec = importlib.util.spec_from_file_location(
        "metadata_module", REPO / "scripts" / "mirflow" / "exports" / "stable_audio.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    track_audio = workdir / "music" / BAND / "full_mix.flac"
    crop_dir = workdir / "results" / BAND / "crops"
    crop_audio = crop_dir / json.loads((crop_dir / "crops.json").read_text())["crops"][0]["audio"]
    for audio, expected_info in ((track_audio, _info(workdir, BAND)),
                                 (crop_audio, json.loads(crop_audio.with_suffix(".INFO").read_text()))):
        info = {"path": str(audio), "relpath": audio.name, "timestamps": (0.0, 1.0), "seconds_start": 0,
                "seconds_total": 2.0, "padding_mask": None, "sample_rate": SR}
        out = module.get_custom_metadata(info, None)
        assert "__reject__" not in out, out
        assert isinstance(out["prompt"], str) and out["prompt"]
        if "bpm" in expected_info and expected_info.get("bpm_is_defined") == 1:
            assert f"{expected_info['bpm']:.0f} BPM" in out["prompt"]
    stem = crop_audio.with_name(crop_audio.stem + "_drums.flac")
    assert module.get_custom_metadata({"path": str(stem), "relpath": stem.name}, None).get("__reject__")


def test_sat_exports_survive_moving_the_music_and_the_results(workdir, tmp_path):
    """Both folders really moved (as onto a training machine); the module's own checker finds every track."""
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(workdir / "music"), moved / "music")
    shutil.move(str(workdir / "results"), moved / "out")
    try:
        proc = subprocess.run([sys.executable, "-m", "mirflow.exports.stable_audio", "--config",
                               str(moved / "out" / "sat_config.json"), str(moved / "music")],
                              capture_output=True, text=True, timeout=120, check=True)
    finally:
        shutil.move(str(moved / "music"), workdir / "music")
        shutil.move(str(moved / "out"), workdir / "results")
    lines = {line[8:].split(": ", 1)[0]: line for line in proc.stdout.splitlines()[:-1]}
    for audio in (f"{BAND}/full_mix.flac", f"{LOOSE}.ogg"):
        line = lines[str(moved / "music" / audio)]
        assert "no .INFO found" not in line, line
    # The provided stems are audio files of the music folder without a .INFO of their own: rejected.
    assert "no .INFO found" in lines[str(moved / "music" / BAND / "drums.flac")]


def test_audiocraft_manifest_holds_the_crop_mixes_with_sidecars_and_no_stems(workdir):
    import gzip

    with gzip.open(workdir / "results" / "audiocraft" / "data.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    expected, stems = [], 0
    for manifest in sorted((workdir / "results").glob("**/crops/crops.json")):
        for crop in json.loads(manifest.read_text())["crops"]:
            audio = manifest.parent / crop["audio"]
            assert audio.with_suffix(".json").is_file()  # its MusicInfo sidecar
            expected.append(str(audio.resolve()))
            stems += len(crop["stems"])  # crop stems exist beside it and must not be listed
    assert [r["path"] for r in rows] == sorted(expected) and expected and stems
    for row in rows:
        info = sf.info(row["path"])
        assert row["sample_rate"] == info.samplerate == SR
        assert row["duration"] == pytest.approx(info.frames / info.samplerate)
