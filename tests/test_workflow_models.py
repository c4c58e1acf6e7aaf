"""Model registry and separation through the real workflow, with a random-weight HTDemucs checkpoint."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from demucs_fixture import manifest_for, write_random_htdemucs
from test_workflow import plan, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("models_workflow")
    shutil.copytree(REPO / "config", wd / "config")
    source = wd / "official"  # stands in for the official download location (file:// URL)
    checkpoint = write_random_htdemucs(source / "demucs")
    (wd / "manifest.yaml").write_text(manifest_for(checkpoint, source))
    (wd / "overrides.yaml").write_text(
        "models_dir: mymodels\nmodels_manifest: manifest.yaml\n"
        "separation:\n  enabled: true\n  force: false\n  model: htdemucs\n  device: cpu\n  shifts: 0\n"
        "  overlap: 0.25\n  segment_s: null\n  oom_retry_segment_s: 4.0\n  format: flac\n  mp3_vbr_quality: 0.6\n")
    (wd / "music").mkdir()
    sr = 44100
    t = np.arange(int(sr * 2.5)) / sr
    mix = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(wd / "music" / "no stems.wav", np.stack([mix, mix], 1).astype(np.float32), sr)
    return wd


ARGS = ("--configfile", "config/config.yaml", "overrides.yaml")


def place_model_by_hand(workdir, model: str, *shared_parts: str) -> None:
    """Copy a real model file from ../shared into the test's models folder (as a user would) and add the
    packaged manifest entry of that model to the test manifest."""
    import yaml

    from conftest import shared_path

    weights = shared_path(*shared_parts)
    packaged = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text())
    (entry,) = [f for f in packaged["models"][model]["files"] if f["path"].endswith(weights.name)]
    target = workdir / "mymodels" / entry["path"]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, target)
    manifest = yaml.safe_load((workdir / "manifest.yaml").read_text())
    manifest["models"][model] = packaged["models"][model]
    (workdir / "manifest.yaml").write_text(yaml.safe_dump(manifest))


def _info(wd):
    return json.loads((wd / "results" / "no stems" / "no stems.INFO").read_text())


def test_missing_model_skips_stem_families_with_a_clear_report(workdir):
    proc = snakemake(workdir, *ARGS)
    err = proc.stdout + proc.stderr
    assert "MISSING mymodels/demucs/955717e8-" in err and "make models" in err
    info = _info(workdir)
    assert "lufs" in info and "lufs_drums" not in info
    assert "htdemucs" in info["_provenance"]["missing_families"]["loudness_stems"]


def test_fetch_models_fetches_and_verifies_then_separation_feeds_stem_families(workdir):
    snakemake(workdir, "fetch_models", *ARGS)
    assert list((workdir / "mymodels" / "demucs").glob("955717e8-*.th"))
    assert list((workdir / "mymodels" / ".verified" / "demucs").glob("*.sha256"))
    jobs = plan(workdir, *ARGS)
    assert {rule for rule, _ in jobs} >= {"separate_stems", "stem_features", "track_info"}
    assert not {rule for rule, _ in jobs} & {"loudness", "spectral", "multiband_rms"}, "mix families stay valid"
    snakemake(workdir, *ARGS)
    info = _info(workdir)
    for stem in ("drums", "bass", "other", "vocals"):
        assert f"lufs_{stem}" in info or info["_provenance"]["absent"].get(f"lufs_{stem}") == "silent stem"
    meta = json.loads((workdir / "results" / "no stems" / "stems" / "separation.json").read_text())
    assert meta["model"] == "htdemucs" and meta["device"] == "cpu" and meta["model_samplerate"] == 44100
    assert set(meta["stems"]) == {"drums", "bass", "other", "vocals"}
    stems = info["_provenance"]["families"]["loudness_stems"]["inputs"]  # name -> path in _provenance.inputs
    assert stems["drums"].endswith("results/no stems/stems/drums.flac")
    assert stems["drums"] in info["_provenance"]["inputs"]
    assert plan(workdir, *ARGS) == set()


def test_a_corrupted_model_file_fails_verification_loudly(workdir):
    ckpt = next((workdir / "mymodels" / "demucs").glob("955717e8-*.th"))
    original = ckpt.read_bytes()
    try:
        ckpt.write_bytes(original[:-10] + b"0123456789")
        proc = snakemake(workdir, *ARGS, check=False)
        assert proc.returncode != 0
        assert "has sha256" in proc.stdout + proc.stderr and "fetch_models" in proc.stdout + proc.stderr
    finally:
        ckpt.write_bytes(original)


def test_drums_rule_with_real_adtof_weights_placed_by_hand(workdir):
    place_model_by_hand(workdir, "adtof_frame_rnn", "models", "adtof", "adtof_frame_rnn_pytorch_weights.pth")
    assert "gpu_features" in {rule for rule, _ in plan(workdir, *ARGS)}
    snakemake(workdir, "fetch_models", *ARGS)  # the separation checkpoint, if an earlier test did not fetch it
    snakemake(workdir, *ARGS)
    midi = workdir / "results" / "no stems" / "drums_adtof.mid"
    assert midi.is_file() and midi.read_bytes()[:4] == b"MThd"
    family = json.loads((workdir / "results" / "no stems" / "features" / "drums.json").read_text())
    assert family["_meta"]["details"]["input"] == "drums"  # the separated drums stem, not the mix
    assert family["_meta"]["details"]["model_sha256"].startswith("1bc986e5")
    assert isinstance(family["drum_hits_kick"], int)
    assert "drum_hits_kick" in _info(workdir)


def test_classifiers_rule_with_real_musicnn_weights(workdir):
    import hashlib

    import yaml

    from conftest import shared_path

    place_model_by_hand(workdir, "essentia_msd_musicnn", "models", "essentia_tf", "msd-musicnn-1.pb")
    # The real danceability head, as the ONNX export available here (a user may place either format;
    # the family picks the runtime by extension). Its manifest entry names the .onnx file.
    onnx = shared_path("models", "essentia_onnx", "danceability-msd-musicnn-1.onnx")
    target = workdir / "mymodels" / "essentia" / onnx.name
    shutil.copy(onnx, target)
    manifest = yaml.safe_load((workdir / "manifest.yaml").read_text())
    manifest["models"]["essentia_danceability_musicnn"] = {
        "description": "danceability head, ONNX", "licence": "CC BY-NC-SA 4.0", "families": ["classifiers"],
        "files": [{"path": f"essentia/{onnx.name}", "urls": [onnx.as_uri()],
                   "sha256": hashlib.sha256(onnx.read_bytes()).hexdigest()}]}
    (workdir / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    snakemake(workdir, "fetch_models", *ARGS)
    snakemake(workdir, *ARGS)
    info = _info(workdir)
    tags = info["musicnn_tags"]
    assert tags and all(0.1 <= p <= 1 for p in tags.values()) and list(tags.values()) == sorted(tags.values())[::-1]
    assert info["_provenance"]["absent"]["essentia_genre"] == "model discogs-effnet-bs64-1 not available"
    # The MusiCNN backbone alone gives no atonality head: atonality comes from the classic source, and the
    # resolution says why the model sources were skipped.
    skipped = info["_provenance"]["resolved"]["atonality"]["skipped"]
    assert skipped["musicnn_atonality"] == "model tonal_atonal-msd-musicnn-1 not available"
    assert info["_provenance"]["resolved"]["atonality"]["source"] == "atonality_key_profile"
    # danceability from the real MusiCNN head (2.5 s of audio is too short for the classic DFA anyway).
    assert 0.0 <= info["musicnn_danceability"] <= 1.0 and info["danceability"] == info["musicnn_danceability"]
    assert info["_provenance"]["resolved"]["danceability"]["source"] == "musicnn_danceability"
    assert info["_provenance"]["resolved"]["danceability"]["skipped"]["effnet_danceability"] == (
        "model discogs-effnet-bs64-1 not available")

    emb = np.load(workdir / "results" / "no stems" / "embeddings" / "musicnn.npy")
    assert emb.shape == (200,) and emb.dtype == np.float32


def test_classifiers_rule_with_standin_effnet_chain(workdir):
    """The whole Discogs-EffNet rule path: manifest-verified files, one job, heads, embedding file, and the
    resolved danceability/atonality taken from the EffNet heads. The graphs are stand-ins with the real node
    names (the real backbone cannot be fetched here); with one patch their outputs are known in closed form."""
    import hashlib

    import yaml

    from tf_graph_fixture import standin_effnet, standin_head

    pytest.importorskip("essentia.standard")
    rng = np.random.default_rng(3)
    folder = workdir / "mymodels" / "essentia"
    folder.mkdir(parents=True, exist_ok=True)
    w_dance = rng.standard_normal((1280, 2)).astype(np.float32)
    w_tonal = rng.standard_normal((1280, 2)).astype(np.float32)
    labels = [f"Genre{i // 20}---Style {i}" for i in range(400)]
    genre_json = folder / "genre_discogs400-discogs-effnet-1.json"
    genre_json.write_text(json.dumps({"classes": labels}))
    tonal_json = folder / "tonal_atonal-discogs-effnet-1.json"
    tonal_json.write_text(json.dumps({"classes": ["tonal", "atonal"]}))
    files = {
        "essentia_discogs_effnet_bs64": [standin_effnet(
            folder / "discogs-effnet-bs64-1.pb", rng.standard_normal((96, 1280)).astype(np.float32) / 20)],
        "essentia_genre_discogs400": [standin_head(
            folder / "genre_discogs400-discogs-effnet-1.pb", rng.standard_normal((1280, 400)).astype(np.float32),
            "serving_default_model_Placeholder", "PartitionedCall:0", "Sigmoid"), str(genre_json)],
        "essentia_danceability_effnet": [standin_head(
            folder / "danceability-discogs-effnet-1.pb", w_dance, "model/Placeholder", "model/Softmax", "Softmax")],
        "essentia_tonal_atonal_effnet": [standin_head(
            folder / "tonal_atonal-discogs-effnet-1.pb", w_tonal, "model/Placeholder", "model/Softmax", "Softmax"),
            str(tonal_json)],
    }
    manifest = yaml.safe_load((workdir / "manifest.yaml").read_text())
    for model, paths in files.items():
        manifest["models"][model] = {
            "description": "stand-in graph with the real node names", "licence": "test", "families": ["classifiers"],
            "files": [{"path": f"essentia/{Path(p).name}", "urls": [Path(p).as_uri()],
                       "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for p in paths]}
    (workdir / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    assert "gpu_features" in {rule for rule, _ in plan(workdir, *ARGS)}
    snakemake(workdir, "fetch_models", *ARGS)
    snakemake(workdir, *ARGS)

    info = _info(workdir)
    family = json.loads((workdir / "results" / "no stems" / "features" / "classifiers.json").read_text())
    assert family["_meta"]["details"]["backbones"]["discogs-effnet-bs64-1"]["patches"] == 1
    assert family["_meta"]["details"]["models"]["tonal_atonal-discogs-effnet-1"]["classes"] == "metadata json"
    emb = np.load(workdir / "results" / "no stems" / "embeddings" / "discogs_effnet.npy")
    assert emb.shape == (1280,) and emb.dtype == np.float32

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    # One patch: the head's mean over patches is the head of the saved (mean) embedding.
    assert info["effnet_danceability"] == pytest.approx(softmax(emb @ w_dance)[0], abs=2e-4)
    assert info["effnet_atonality"] == pytest.approx(softmax(emb @ w_tonal)[1], abs=2e-4)  # "atonal" is 2nd
    assert set(info["essentia_genre"]) <= set(labels) and len(info["essentia_genre"]) <= 10
    assert info["_provenance"]["absent"]["essentia_instrument"] == (
        "model mtg_jamendo_instrument-discogs-effnet-1 not available")
    resolved = info["_provenance"]["resolved"]
    assert info["danceability"] == info["effnet_danceability"]
    assert resolved["danceability"]["source"] == "effnet_danceability"
    assert info["atonality"] == info["effnet_atonality"] and resolved["atonality"]["source"] == "effnet_atonality"
