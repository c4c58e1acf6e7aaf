"""Essentia classifiers.

* Pure helpers on exact inputs (label filtering, tiling, patching, file mapping, embeddings on disk).
* The whole Discogs-EffNet path with small stand-in TensorFlow graphs written here as GraphDef protobufs,
  with the real node names (the real backbone cannot be fetched here): Essentia's predictor, patch
  geometry, per-patch heads averaged afterwards, labels from the metadata JSON, tiling of short input.
* With the real models in ../shared (skipped when absent): the MusiCNN backbone against Essentia's own
  ``TensorflowPredictMusiCNN``, the real EffNet heads on 1280-d inputs, plausible tags and danceability on
  real recordings.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import as_signal, shared_path
from mirflow import classifiers as cls
from tf_graph_fixture import standin_effnet, standin_head

pytest.importorskip("essentia.standard")

TF = ("models", "essentia_tf")
ONNX = ("models", "essentia_onnx")
REAL = ("audio", "real")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference_mel_patches(signal, patch_frames, hop_frames):
    """Mel patches computed directly with Essentia's algorithms (Resample q4, FrameGenerator 512/256,
    TensorflowInputMusiCNN), independently of the module's helpers."""
    import essentia.standard as es

    mono = signal.samples.mean(axis=0).astype(np.float32)
    x = es.Resample(inputSampleRate=signal.sample_rate, outputSampleRate=16000, quality=4)(mono)
    to_mel = es.TensorflowInputMusiCNN()
    frames = np.array([to_mel(f) for f in es.FrameGenerator(x, frameSize=512, hopSize=256)])
    n = (len(frames) - patch_frames) // hop_frames + 1
    return np.stack([frames[i * hop_frames:i * hop_frames + patch_frames] for i in range(n)]), x


def assert_top_labels(got, expected_probs, labels, min_p=0.1, max_n=10, tol=2e-4):
    """``got`` is the top-label dict of ``expected_probs`` up to float noise (near-ties may swap)."""
    expected = dict(zip(labels, np.asarray(expected_probs, dtype=float)))
    values = list(got.values())
    assert values == sorted(values, reverse=True)
    for label, p in got.items():
        assert abs(p - expected[label]) < tol, label
    assert len(got) == min(max_n, sum(p >= min_p for p in expected.values())) or \
        any(abs(p - min_p) < tol for p in expected.values())
    weakest = min(values) if values else min_p
    assert all(p <= weakest + tol for label, p in expected.items() if label not in got)


@pytest.fixture(scope="module")
def effnet_graph(tmp_path_factory):
    w = np.random.default_rng(0).standard_normal((96, 1280)).astype(np.float32) / 20
    folder = tmp_path_factory.mktemp("effnet")
    return standin_effnet(folder / "discogs-effnet-bs64-1.pb", w), w


def _music(seconds, sr=44100):
    """A stereo 'tune': a few harmonics with a moving pitch and a pulse, so mel patches differ."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220 * (1 + 0.25 * np.sin(2 * np.pi * 0.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tone = sum(0.2 / k * np.sin(k * phase) for k in (1, 2, 3))
    pulse = 0.3 * (np.sin(2 * np.pi * 2 * t) > 0.95) * np.sin(2 * np.pi * 90 * t)
    return as_signal(np.stack([tone + pulse, 0.8 * tone + pulse]), sr)


# ---------------------------------------------------------------- pure helpers

def test_top_labels_filters_sorts_caps_and_rounds():
    labels = [f"l{i}" for i in range(14)]
    probs = np.array([0.05, 0.5, 0.099999, 0.1, 0.3, 0.3, 0.12345678, 0.9, 0.2, 0.11, 0.13, 0.14, 0.15, 0.16])
    out = cls.top_labels(probs, labels, min_probability=0.1, max_labels=10, decimals=4)
    assert list(out.items()) == [("l7", 0.9), ("l1", 0.5), ("l4", 0.3), ("l5", 0.3), ("l8", 0.2), ("l13", 0.16),
                                 ("l12", 0.15), ("l11", 0.14), ("l10", 0.13), ("l6", 0.1235)]
    assert cls.top_labels(probs, labels, 0.1, 20, 2) == {
        "l7": 0.9, "l1": 0.5, "l4": 0.3, "l5": 0.3, "l8": 0.2, "l13": 0.16, "l12": 0.15, "l11": 0.14,
        "l10": 0.13, "l6": 0.12, "l9": 0.11, "l3": 0.1}
    assert cls.top_labels(np.full(3, 0.05), ["a", "b", "c"], 0.1, 10, 4) == {}
    with pytest.raises(ValueError):
        cls.top_labels(np.ones(3), ["a", "b"], 0.1, 10, 4)


def test_tiling_and_patching_geometry():
    np.testing.assert_array_equal(cls.tile_to_length(np.array([1, 2, 3]), 8), [1, 2, 3, 1, 2, 3, 1, 2])
    frames = np.arange(300 * 96, dtype=np.float32).reshape(300, 96)
    p = cls.patches(frames, 187, 93)
    assert p.shape == (2, 187, 96) and p[1, 0, 0] == frames[93, 0] and p[1, -1, 0] == frames[279, 0]
    assert cls.patches(frames[:186], 187, 93).shape == (0, 187, 96)
    assert cls.patches(frames[:187], 187, 93).shape == (1, 187, 96)
    # One patch always fits in min_samples: 2.048 s (EffNet) and 2.992 s (MusiCNN).
    for backbone in (cls.EFFNET, cls.MUSICNN):
        n_frames = len(cls.mel_frames(np.zeros(backbone.min_samples, np.float32)))
        assert n_frames >= backbone.patch_frames
    assert cls.EFFNET.min_samples / 16000 == 2.048 and cls.MUSICNN.min_samples / 16000 == 2.992


def test_model_files_map_to_names_pb_first_json_skipped():
    files = ["/m/a/msd-musicnn-1.onnx", "/m/a/msd-musicnn-1.pb", "/m/b/genre_discogs400-discogs-effnet-1.json",
             "/m/b/genre_discogs400-discogs-effnet-1.pb", "/m/c/mood_sad-msd-musicnn-1.onnx"]
    assert cls.model_paths_from_files(files) == {
        "msd-musicnn-1": "/m/a/msd-musicnn-1.pb",
        "genre_discogs400-discogs-effnet-1": "/m/b/genre_discogs400-discogs-effnet-1.pb",
        "mood_sad-msd-musicnn-1": "/m/c/mood_sad-msd-musicnn-1.onnx"}


def test_embedding_written_as_float32_npy(tmp_path):
    path = tmp_path / "embeddings" / "musicnn.npy"
    cls.write_embedding_npy(str(path), np.arange(200, dtype=np.float64) / 7)
    back = np.load(path)
    assert back.dtype == np.float32 and back.shape == (200,) and back[7] == np.float32(1.0)
    assert [p.name for p in path.parent.iterdir()] == ["musicnn.npy"]
    with pytest.raises(ValueError):
        cls.write_embedding_npy(str(path), np.array([1.0, np.nan]))


def test_without_models_every_key_is_absent_with_the_missing_model_named():
    result, embeddings = cls.classify(cls.load_classifiers({}), _music(3.0))
    assert result.values == {} and embeddings == {}
    assert sorted(result.absent) == sorted(cls.KEYS)
    assert result.absent["essentia_genre"] == "model discogs-effnet-bs64-1 not available"
    assert result.absent["musicnn_mood_party"] == "model msd-musicnn-1 not available"


def test_silent_and_too_short_input_are_absent_before_any_model_runs():
    models = cls.load_classifiers({})
    silent, emb = cls.classify(models, as_signal(np.zeros((2, 44100 * 3)), 44100))
    assert set(silent.absent.values()) == {"silent"} and emb == {}
    short, _ = cls.classify(models, _music(0.3))
    assert all(r == "too short (0.300 s < 0.5 s)" for r in short.absent.values())


def test_catalogue_part_lists_exactly_the_keys_produced():

    from mirflow.catalogue import load_catalogue

    cat = load_catalogue()
    entries = [{"key": k, "type": cat.entry(k).type} for k in cat.keys_for_family("classifiers")]
    assert [e["key"] for e in entries] == list(cls.KEYS)
    assert {e["key"] for e in entries if e["type"] == "object"} == {
        "essentia_genre", "essentia_mood", "essentia_instrument", "musicnn_tags"}


def test_unknown_model_name_and_missing_file_are_errors(tmp_path):
    with pytest.raises(cls.ClassifierError, match="unknown classifier model"):
        cls.load_classifiers({"vggish-audioset-1": str(tmp_path / "x.pb")})
    with pytest.raises(cls.ClassifierError, match="does not exist"):
        cls.load_classifiers({"msd-musicnn-1": str(tmp_path / "msd-musicnn-1.pb")})


# ---------------------------------------------------------------- EffNet path with stand-in graphs

def test_effnet_chain_with_standin_graphs_reproduces_patchwise_reference(effnet_graph, tmp_path):
    backbone_path, w = effnet_graph
    rng = np.random.default_rng(1)
    labels = [f"Style{i // 10}---Sub {i}" for i in range(400)]
    w_genre = rng.standard_normal((1280, 400)).astype(np.float32) / 10
    genre = standin_head(tmp_path / "genre_discogs400-discogs-effnet-1.pb", w_genre,
                         "serving_default_model_Placeholder", "PartitionedCall:0", "Sigmoid")
    (tmp_path / "genre_discogs400-discogs-effnet-1.json").write_text(json.dumps({"classes": labels}))
    w_dance = rng.standard_normal((1280, 2)).astype(np.float32) / 3
    dance = standin_head(tmp_path / "danceability-discogs-effnet-1.pb", w_dance, "model/Placeholder",
                         "model/Softmax", "Softmax")
    models = cls.load_classifiers({"discogs-effnet-bs64-1": backbone_path,
                                   "genre_discogs400-discogs-effnet-1": genre,
                                   "danceability-discogs-effnet-1": dance})
    signal = _music(7.0)
    result, embeddings = cls.classify(models, signal)

    mel, _ = reference_mel_patches(signal, 128, 62)
    n = result.meta["backbones"]["discogs-effnet-bs64-1"]["patches"]
    # Essentia's batch padding drops a last patch that touches the end of the signal; otherwise all patches.
    assert n in (len(mel), len(mel) - 1) and n >= 5
    per_patch = mel[:n].mean(axis=1) @ w
    np.testing.assert_allclose(embeddings["discogs_effnet"], per_patch.mean(axis=0), rtol=1e-4, atol=1e-4)
    # Heads run on every patch and are averaged afterwards (a sigmoid of the mean would differ).
    genre_mean = sigmoid(per_patch @ w_genre).mean(axis=0)
    assert_top_labels(result.values["essentia_genre"], genre_mean, labels)
    assert np.max(np.abs(sigmoid(per_patch.mean(axis=0) @ w_genre) - genre_mean)) > 1e-2
    assert result.values["effnet_danceability"] == pytest.approx(softmax(per_patch @ w_dance)[:, 0].mean(), abs=2e-4)
    assert result.absent["essentia_mood"] == "model mtg_jamendo_moodtheme-discogs-effnet-1 not available"
    assert result.meta["models"]["genre_discogs400-discogs-effnet-1"]["classes"] == "metadata json"
    assert len(result.meta["models"]["discogs-effnet-bs64-1"]["sha256"]) == 64


def test_short_input_is_tiled_to_one_patch_and_meta_says_so(effnet_graph):
    backbone_path, w = effnet_graph
    models = cls.load_classifiers({"discogs-effnet-bs64-1": backbone_path})
    signal = _music(1.2)
    result, embeddings = cls.classify(models, signal)
    info = result.meta["backbones"]["discogs-effnet-bs64-1"]
    assert info["patches"] == 1
    assert info["tiled"] == "signal repeated from 1.200 s to 2.048 s to fill one patch"
    import essentia.standard as es

    x = es.Resample(inputSampleRate=44100, outputSampleRate=16000, quality=4)(signal.samples.mean(0).astype(np.float32))
    tiled = np.resize(x, 32768)
    frames = np.array([es.TensorflowInputMusiCNN()(f) for f in es.FrameGenerator(tiled, frameSize=512, hopSize=256)])
    np.testing.assert_allclose(embeddings["discogs_effnet"], frames[:128].mean(axis=0) @ w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("classes", [["atonal", "tonal"], ["tonal", "atonal"]])
def test_tonal_atonal_head_reads_p_atonal_by_name_in_either_class_order(effnet_graph, tmp_path, classes):
    """Published tonal/atonal metadata lists the classes in both orders; the column is found by name."""
    backbone_path, w = effnet_graph
    w_tonal = np.random.default_rng(5).standard_normal((1280, 2)).astype(np.float32) / 3
    head = standin_head(tmp_path / "tonal_atonal-discogs-effnet-1.pb", w_tonal, "model/Placeholder",
                        "model/Softmax", "Softmax")
    (tmp_path / "tonal_atonal-discogs-effnet-1.json").write_text(json.dumps({"classes": classes}))
    models = cls.load_classifiers({"discogs-effnet-bs64-1": backbone_path, "tonal_atonal-discogs-effnet-1": head})
    signal = _music(7.0)
    result, _ = cls.classify(models, signal)
    mel, _ = reference_mel_patches(signal, 128, 62)
    n = result.meta["backbones"]["discogs-effnet-bs64-1"]["patches"]
    expected = softmax((mel[:n].mean(axis=1) @ w) @ w_tonal)[:, classes.index("atonal")].mean()
    assert result.values["effnet_atonality"] == pytest.approx(expected, abs=2e-4)
    assert "p(atonal)" in result.meta["methods"]["effnet_atonality"]
    assert result.absent["musicnn_atonality"] == "model msd-musicnn-1 not available"


def test_tonal_atonal_head_needs_metadata_naming_the_atonal_class(tmp_path):
    head = standin_head(tmp_path / "tonal_atonal-discogs-effnet-1.pb", np.zeros((1280, 2), np.float32),
                        "model/Placeholder", "model/Softmax", "Softmax")
    with pytest.raises(cls.ClassifierError, match="needs its metadata file tonal_atonal-discogs-effnet-1.json"):
        cls.load_classifiers({"tonal_atonal-discogs-effnet-1": head})
    (tmp_path / "tonal_atonal-discogs-effnet-1.json").write_text(json.dumps({"classes": ["tonal", "other"]}))
    with pytest.raises(cls.ClassifierError, match="without the class 'atonal'"):
        cls.load_classifiers({"tonal_atonal-discogs-effnet-1": head})


def test_metadata_that_contradicts_the_model_or_is_missing_is_an_error(tmp_path):
    w = np.zeros((1280, 2), np.float32)
    dance = standin_head(tmp_path / "danceability-discogs-effnet-1.pb", w, "model/Placeholder", "model/Softmax",
                         "Softmax")
    swapped = {"classes": ["not_danceable", "danceable"]}
    (tmp_path / "danceability-discogs-effnet-1.json").write_text(json.dumps(swapped))
    with pytest.raises(cls.ClassifierError, match="expected \\['danceable', 'not_danceable'\\]"):
        cls.load_classifiers({"danceability-discogs-effnet-1": dance})
    genre = standin_head(tmp_path / "genre_discogs400-discogs-effnet-1.pb", np.zeros((1280, 400), np.float32),
                         "serving_default_model_Placeholder", "PartitionedCall:0", "Sigmoid")
    with pytest.raises(cls.ClassifierError, match="needs its metadata file genre_discogs400-discogs-effnet-1.json"):
        cls.load_classifiers({"genre_discogs400-discogs-effnet-1": genre})


# ---------------------------------------------------------------- real models (../shared)

def _real_paths(tmp_path=None):
    paths = {"msd-musicnn-1": str(shared_path(*TF, "msd-musicnn-1.pb"))}
    for task in ("danceability", "mood_aggressive", "mood_happy", "mood_party", "mood_relaxed", "mood_sad"):
        paths[f"{task}-msd-musicnn-1"] = str(shared_path(*ONNX, f"{task}-msd-musicnn-1.onnx"))
    return paths


def test_musicnn_backbone_equals_essentias_own_predictor_and_the_msd_head():
    import essentia.standard as es

    graph = str(shared_path(*TF, "msd-musicnn-1.pb"))
    models = cls.load_classifiers({"msd-musicnn-1": graph})
    from mirflow.audio import load_audio

    track = load_audio(str(shared_path(*REAL, "librosa_fishin.ogg")))
    x = cls.to_model_input(as_signal(track.samples[:, 10 * track.sample_rate:25 * track.sample_rate],
                                     track.sample_rate), 4)
    tags, emb = cls.run_musicnn(models.models["msd-musicnn-1"], x, batch_patches=4)
    ref_tags = es.TensorflowPredictMusiCNN(graphFilename=graph)(x)
    ref_emb = es.TensorflowPredictMusiCNN(graphFilename=graph, output="model/dense/BiasAdd")(x)
    assert tags.shape == (9, 50) and emb.shape == (9, 200)
    np.testing.assert_allclose(tags, ref_tags, atol=1e-6)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-5)
    # The separately published MSD tag head is the backbone's last layer: same probabilities.
    head = es.TensorflowPredict2D(graphFilename=str(shared_path(*TF, "msd-msd-musicnn-1.pb")),
                                  input="serving_default_model_Placeholder", output="PartitionedCall:0")
    np.testing.assert_allclose(head(emb), tags, atol=1e-6)


def test_real_effnet_heads_on_1280d_inputs(effnet_graph):
    import essentia.standard as es

    backbone_path, _ = effnet_graph
    names = ["genre_discogs400", "mtg_jamendo_moodtheme", "danceability", "mood_aggressive", "mood_happy",
             "mood_relaxed", "mood_sad"]
    paths = {f"{n}-discogs-effnet-1": str(shared_path(*TF, f"{n}-discogs-effnet-1.pb")) for n in names}
    models = cls.load_classifiers({"discogs-effnet-bs64-1": backbone_path, **paths})
    result, embeddings = cls.classify(models, _music(6.0))
    genre_labels = json.loads(shared_path(*TF, "genre_discogs400-discogs-effnet-1.json").read_text())["classes"]
    assert len(genre_labels) == 400 and set(result.values["essentia_genre"]) <= set(genre_labels)
    assert all("---" in label for label in result.values["essentia_genre"])
    mood_labels = json.loads(shared_path(*TF, "mtg_jamendo_moodtheme-discogs-effnet-1.json").read_text())["classes"]
    assert set(result.values["essentia_mood"]) <= set(mood_labels)
    for key in ("effnet_danceability", "effnet_mood_aggressive", "effnet_mood_happy", "effnet_mood_relaxed",
                "effnet_mood_sad"):
        assert 0.0 <= result.values[key] <= 1.0
    # The heads' I/O node names come from their metadata JSON; an independent Essentia call on the
    # backbone's per-patch embeddings gives the same numbers.
    per_patch = es.TensorflowPredictEffnetDiscogs(graphFilename=backbone_path, output="PartitionedCall:1")(
        cls.to_model_input(_music(6.0), 4))
    np.testing.assert_allclose(embeddings["discogs_effnet"], per_patch.mean(axis=0), atol=1e-5)
    relaxed = es.TensorflowPredict2D(graphFilename=paths["mood_relaxed-discogs-effnet-1"],
                                     output="model/Softmax")(per_patch)
    assert result.values["effnet_mood_relaxed"] == pytest.approx(float(relaxed[:, 1].mean()), abs=1e-4)
    genre = es.TensorflowPredict2D(graphFilename=paths["genre_discogs400-discogs-effnet-1"],
                                   input="serving_default_model_Placeholder", output="PartitionedCall:0")(per_patch)
    assert_top_labels(result.values["essentia_genre"], genre.mean(axis=0), genre_labels)


def test_musicnn_tags_and_danceability_are_plausible_on_real_recordings():
    """MSD's 50 tags have no 'classical': MusiCNN calls both orchestral pieces 'jazz'/'oldies'. The
    obvious contrasts checked: a sung pop/folk song gets 'female vocalists' and the orchestral pieces
    do not; the electronic track gets 'electronic' and is the most danceable; the trumpet loop is 'jazz'."""
    from mirflow.audio import load_audio

    models = cls.load_classifiers(_real_paths())

    def excerpt(name, start=10.0, stop=30.0):
        track = load_audio(str(shared_path(*REAL, f"librosa_{name}.ogg")))
        sr = track.sample_rate
        result, embeddings = cls.classify(models, as_signal(track.samples[:, int(start * sr):int(stop * sr)], sr))
        assert embeddings["musicnn"].shape == (200,)
        assert set(result.absent.values()) == {"model discogs-effnet-bs64-1 not available",
                                               "model tonal_atonal-msd-musicnn-1 not available"}
        return result.values

    fishin, brahms, nutcracker, vibeace = (excerpt(n) for n in ("fishin", "brahms", "nutcracker", "vibeace"))
    trumpet = excerpt("trumpet", 0.0, 10.0)
    assert list(fishin["musicnn_tags"])[0] == "female vocalists" and fishin["musicnn_tags"]["female vocalists"] > 0.25
    for orchestral in (brahms, nutcracker):
        assert "female vocalists" not in orchestral["musicnn_tags"]
        assert "electronic" not in orchestral["musicnn_tags"]
        assert list(orchestral["musicnn_tags"])[0] == "jazz"
    assert "instrumental" in brahms["musicnn_tags"]
    assert "electronic" in vibeace["musicnn_tags"]
    assert list(trumpet["musicnn_tags"]) == ["jazz"] and trumpet["musicnn_tags"]["jazz"] > 0.8
    assert vibeace["musicnn_danceability"] > 0.6 > fishin["musicnn_danceability"]
    assert max(brahms["musicnn_danceability"], nutcracker["musicnn_danceability"]) < 0.05
    assert nutcracker["musicnn_mood_aggressive"] < 0.05 and vibeace["musicnn_mood_aggressive"] < 0.05


def test_shared_model_checksums_match_the_manifest_proposal():
    import yaml

    from conftest import REPO

    manifest = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text())
    sums = dict(line.split()[::-1] for line in shared_path("models", "SHA256SUMS").read_text().splitlines())
    checked = 0
    for spec in manifest["models"].values():
        for f in spec["files"]:
            key = f"essentia_tf/{f['path'].split('/')[-1]}"
            if key in sums and f.get("sha256"):
                assert f["sha256"] == sums[key], key
                checked += 1
    assert checked >= 8
