"""Genre, mood, instrument and tag classifiers: Essentia's pretrained TensorFlow models.

Two independent chains, each an embedding network (the *backbone*) run once per
track plus small classification *heads* fed with its embeddings:

* **Discogs-EffNet** (``discogs-effnet-bs64-1``, 1280-d embeddings from Essentia
  ``TensorflowPredictEffnetDiscogs``, output ``PartitionedCall:1``) with the
  heads ``genre_discogs400-discogs-effnet-1`` (400 Discogs styles),
  ``mtg_jamendo_moodtheme-discogs-effnet-1`` (56 moods/themes),
  ``mtg_jamendo_instrument-discogs-effnet-1`` (40 instruments) and the binary
  heads ``danceability`` / ``mood_{aggressive,happy,relaxed,sad}-discogs-effnet-1``.
* **MusiCNN** (``msd-musicnn-1``, trained on the Million Song Dataset) whose own
  sigmoid output (``model/Sigmoid``) gives the 50 MSD tags and whose
  ``model/dense/BiasAdd`` gives 200-d embeddings, with the binary heads
  ``danceability`` / ``mood_{aggressive,happy,party,relaxed,sad}`` / ``tonal_atonal-msd-musicnn-1``.
  The separately published tag head ``msd-msd-musicnn-1`` is that same last
  layer (its output equals ``model/Sigmoid`` to 1.2e-7, measured on a real
  track), so the tags are read from the backbone in the same pass as the
  embeddings and the head file is not needed.

Input, as Essentia's model pages do it (``MonoLoader(sampleRate=16000,
resampleQuality=4)``): the mono downmix (channel mean) resampled to 16 kHz with
Essentia ``Resample`` (quality 4). Both backbones see log-compressed 96-band mel
frames (Essentia ``TensorflowInputMusiCNN``: 512-sample frames, hop 256 =
16 ms) grouped into patches: EffNet 128 frames (2.05 s) every 62 frames
(0.99 s), MusiCNN 187 frames (2.99 s) every 93 frames (1.49 s); a trailing
partial patch is discarded (Essentia's default ``lastPatchMode="discard"``).

Reductions (the old tool's, old-system.md section 1.7): each head's outputs
are averaged over patches; multi-label heads keep the labels with mean
probability >= ``min_probability`` (0.1), at most ``max_labels`` (10), sorted by
probability, rounded to 4 places, spelled exactly as the model's metadata JSON
spells them. Binary heads give the mean probability of their positive class.
The mean backbone embedding of the track is returned for saving as float32.

Audio shorter than one patch is tiled (the signal repeated end to end) up to
exactly one patch, as the old tool did (it tiled short audio to 12 s); Essentia
itself offers the equivalent ``lastPatchMode="repeat"``. ``_meta`` records it.

Runtimes: backbones run in essentia-tensorflow from the official ``.pb`` files.
Heads run from ``.pb`` (Essentia ``TensorflowPredict2D``) or ``.onnx``
(onnxruntime), chosen by the file's extension. On the 2-core development
machine the MusiCNN backbone ran within 20 % in both runtimes, neither
consistently faster (benchmarks/classifier_speed.py: 2.5 s TF vs 2.8 s ONNX for
46 s of audio, 10.8 s vs 8.7 s for 120 s under load), and the embeddings agree
to 2e-5; the official, checksum-pinned ``.pb`` files are used for backbones
(the ONNX backbones available here are third-party conversions).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AudioSignal
from .errors import MirflowError
from .models import sha256_file as sha256_of  # one checksum routine for every model file
from .params import param
from .result import FeatureResult

#: Sample rate every Essentia music model expects (Hz).
MODEL_SAMPLE_RATE = 16000
#: Mel front end shared by both backbones (Essentia TensorflowInputMusiCNN).
MEL_FRAME_SIZE = 512
MEL_HOP_SIZE = 256
MEL_BANDS = 96


@dataclass(frozen=True)
class ClassifiersParams:
    """Parameters of ``classifiers`` (config section ``classifiers``)."""

    min_probability: float = param(0.1, minimum=0.0, maximum=1.0,
                                   doc="Multi-label heads keep the labels whose mean probability is at least this")
    max_labels: int = param(10, minimum=1, doc="At most this many labels per multi-label head, most probable first")
    decimals: int = param(4, minimum=0, doc="Decimal places of every probability written")
    # 4 is what Essentia's model pages use (MonoLoader resampleQuality=4).
    resample_quality: int = param(4, minimum=0, maximum=4,
                                  doc="Essentia Resample quality of the 16 kHz model input (0 best ... 4 fastest)")
    min_duration_s: float = param(0.5, unit="s", minimum=0.0,
                                  doc="Shorter input leaves every key absent; longer input shorter than one patch "
                                      "is tiled to one patch")
    batch_patches: int = param(64, minimum=1,
                               doc="Patches per TensorFlow session of the MusiCNN backbone (bounds memory)")


#: The 50 Million Song Dataset tags in the output order of msd-musicnn-1. Source:
#: ``MSD_LABELS`` in musicnn/configuration.py of the musicnn authors
#: (github.com/jordipons/musicnn), identical to the "classes" of Essentia's
#: MSD models (e.g. https://essentia.upf.edu/models/autotagging/msd/msd-vgg-1.json).
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul",
    "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies",
    "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop",
    "70s", "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
    "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)


class ClassifierError(MirflowError):
    """A classifier model file is unusable (wrong metadata, wrong node names...)."""


@dataclass(frozen=True)
class Backbone:
    """An embedding network and how Essentia feeds it.

    Attributes
    ----------
    name : str
        Essentia model name (file stem).
    patch_frames, patch_hop_frames : int
        Mel frames per patch and between patch starts (16 ms each).
    input_node, embedding_node : str
        Graph node names of the mel-patch input and the embedding output.
    tags_node : str or None
        Node of the model's own tag probabilities when they are used (MusiCNN).
    embedding_name : str
        Name of the saved mean embedding (``embeddings/<name>.npy``).
    dims : int
        Embedding size.
    """

    name: str
    patch_frames: int
    patch_hop_frames: int
    input_node: str
    embedding_node: str
    tags_node: str | None
    embedding_name: str
    dims: int

    @property
    def min_samples(self) -> int:
        """Samples at 16 kHz that always give at least one patch (patch_frames hops)."""
        return self.patch_frames * MEL_HOP_SIZE


EFFNET = Backbone("discogs-effnet-bs64-1", 128, 62, "serving_default_melspectrogram", "PartitionedCall:1",
                  None, "discogs_effnet", 1280)
MUSICNN = Backbone("msd-musicnn-1", 187, 93, "model/Placeholder", "model/dense/BiasAdd", "model/Sigmoid",
                   "musicnn", 200)
BACKBONES = {b.name: b for b in (EFFNET, MUSICNN)}


@dataclass(frozen=True)
class Head:
    """A classification head on a backbone's embeddings.

    Attributes
    ----------
    name : str
        Essentia model name (file stem).
    backbone : str
        Name of the backbone whose embeddings it reads.
    key : str
        Output key.
    input_node, output_node : str
        Default graph nodes (the metadata JSON's ``schema``, when present, wins).
    classes : tuple of str or None
        Class order when known without the metadata JSON (binary heads, from
        Essentia's published metadata); None: the JSON is required.
    positive : str or None
        Binary heads: the class whose probability is the value. None: multi-label.
    """

    name: str
    backbone: str
    key: str
    input_node: str
    output_node: str
    classes: tuple[str, ...] | None = None
    positive: str | None = None


def _binary(name: str, backbone: str, key: str, classes: tuple[str, str], positive: str) -> Head:
    return Head(name, backbone, key, "model/Placeholder", "model/Softmax", classes, positive)


# Binary class orders as Essentia's metadata JSONs list them (the effnet JSONs
# were read; the MusiCNN heads are trained on the same in-house sets and use the
# same orders, alphabetical: https://essentia.upf.edu/models.html).
_BINARY = {
    "danceability": (("danceable", "not_danceable"), "danceable"),
    "mood_aggressive": (("aggressive", "not_aggressive"), "aggressive"),
    "mood_happy": (("happy", "non_happy"), "happy"),
    "mood_party": (("non_party", "party"), "party"),
    "mood_relaxed": (("non_relaxed", "relaxed"), "relaxed"),
    "mood_sad": (("non_sad", "sad"), "sad"),
}

HEADS = {h.name: h for h in (
    Head("genre_discogs400-discogs-effnet-1", EFFNET.name, "essentia_genre",
         "serving_default_model_Placeholder", "PartitionedCall:0"),
    Head("mtg_jamendo_moodtheme-discogs-effnet-1", EFFNET.name, "essentia_mood", "model/Placeholder",
         "model/Sigmoid"),
    Head("mtg_jamendo_instrument-discogs-effnet-1", EFFNET.name, "essentia_instrument", "model/Placeholder",
         "model/Sigmoid"),
    *(_binary(f"{task}-discogs-effnet-1", EFFNET.name, f"effnet_{task}", *_BINARY[task])
      for task in ("danceability", "mood_aggressive", "mood_happy", "mood_relaxed", "mood_sad")),
    *(_binary(f"{task}-msd-musicnn-1", MUSICNN.name, f"musicnn_{task}", *_BINARY[task])
      for task in ("danceability", "mood_aggressive", "mood_happy", "mood_party", "mood_relaxed", "mood_sad")),
    # Published metadata of tonal/atonal heads disagrees on the class order (VGGish: atonal, tonal; the
    # legacy MusiCNN-MTT head: tonal, atonal), so these heads need their JSON and p(atonal) is found by name.
    Head("tonal_atonal-discogs-effnet-1", EFFNET.name, "effnet_atonality", "model/Placeholder", "model/Softmax",
         None, "atonal"),
    Head("tonal_atonal-msd-musicnn-1", MUSICNN.name, "musicnn_atonality", "model/Placeholder", "model/Softmax",
         None, "atonal"),
)}

#: The tag key read from the MusiCNN backbone itself.
MUSICNN_TAGS_KEY = "musicnn_tags"

#: Every key this family can produce, in output order.
KEYS = (
    "essentia_genre", "essentia_mood", "essentia_instrument", MUSICNN_TAGS_KEY,
    "effnet_danceability", "effnet_mood_aggressive", "effnet_mood_happy", "effnet_mood_relaxed",
    "effnet_mood_sad", "musicnn_danceability", "musicnn_mood_aggressive", "musicnn_mood_happy",
    "musicnn_mood_party", "musicnn_mood_relaxed", "musicnn_mood_sad", "effnet_atonality", "musicnn_atonality",
)


# ---------------------------------------------------------------- pure helpers

def top_labels(mean_probabilities: np.ndarray, labels: list[str] | tuple[str, ...], min_probability: float,
               max_labels: int, decimals: int) -> dict[str, float]:
    """The most probable labels of a multi-label head.

    Parameters
    ----------
    mean_probabilities : np.ndarray
        Probability (0-1) of each label, averaged over patches.
    labels : sequence of str
        Label names in output order.
    min_probability : float
        Labels below this (before rounding) are dropped.
    max_labels : int
        At most this many labels are kept.
    decimals : int
        Decimal places of the probabilities returned.

    Returns
    -------
    dict
        label -> rounded probability, ranked by :func:`mirflow.labels.rank_labels` (most probable first,
        ties alphabetical). Empty when no label reaches ``min_probability``.
    """
    from .labels import rank_labels

    probs = np.asarray(mean_probabilities, dtype=np.float64)
    if probs.shape != (len(labels),):
        raise ValueError(f"{probs.shape[0] if probs.ndim else 0} probabilities for {len(labels)} labels")
    ranked = rank_labels(zip(labels, probs.tolist()), min_probability, max_labels)
    return {label: round(p, decimals) for label, p in ranked}


def tile_to_length(x: np.ndarray, n_samples: int) -> np.ndarray:
    """Repeat ``x`` end to end (cyclically) to exactly ``n_samples`` samples."""
    if len(x) == 0:
        raise ValueError("cannot tile an empty signal")
    return np.resize(np.asarray(x, dtype=np.float32), n_samples)


def mel_frames(x16k: np.ndarray) -> np.ndarray:
    """Log-compressed 96-band mel frames, exactly as Essentia's MusiCNN/EffNet predictors compute them.

    Parameters
    ----------
    x16k : np.ndarray
        Mono signal at 16 kHz, float32.

    Returns
    -------
    np.ndarray
        float32 (frames, 96): Essentia ``FrameCutter`` (512 samples, hop 256,
        first frame centred on sample 0) then ``TensorflowInputMusiCNN``.
    """
    es = _essentia_standard()
    to_mel = es.TensorflowInputMusiCNN()
    frames = [to_mel(frame) for frame in es.FrameGenerator(np.asarray(x16k, dtype=np.float32),
                                                           frameSize=MEL_FRAME_SIZE, hopSize=MEL_HOP_SIZE)]
    return np.asarray(frames, dtype=np.float32).reshape(-1, MEL_BANDS)


def patches(frames: np.ndarray, patch_frames: int, hop_frames: int) -> np.ndarray:
    """Cut mel frames into patches; a trailing partial patch is discarded.

    Returns
    -------
    np.ndarray
        float32 (patches, patch_frames, bands); zero patches when there are
        fewer than ``patch_frames`` frames.
    """
    n = 0 if len(frames) < patch_frames else 1 + (len(frames) - patch_frames) // hop_frames
    out = np.empty((n, patch_frames, frames.shape[1]), dtype=np.float32)
    for i in range(n):
        out[i] = frames[i * hop_frames: i * hop_frames + patch_frames]
    return out


def write_embedding_npy(path: str, embedding: np.ndarray) -> None:
    """Save a 1-D embedding as float32 ``.npy``, atomically (temp file + rename, readable by others)."""
    import io

    from .jsonio import write_bytes_atomic

    vector = np.asarray(embedding, dtype=np.float32)
    if vector.ndim != 1 or not np.all(np.isfinite(vector)):
        raise ValueError(f"embedding must be a finite 1-D vector, got shape {vector.shape}")
    buffer = io.BytesIO()
    np.save(buffer, vector)
    write_bytes_atomic(path, buffer.getvalue())


def _essentia_standard():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow 2.5 otherwise reserves all GPU memory at its first session.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    import essentia

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    import essentia.standard as es

    return es


# ---------------------------------------------------------------- loading

@dataclass
class LoadedModel:
    """One model file loaded for inference."""

    name: str
    path: str
    sha256: str
    runtime: str
    input_node: str
    output_node: str
    classes: tuple[str, ...] | None
    classes_source: str
    predictor: Any = field(repr=False)


@dataclass
class Classifiers:
    """Every available model, loaded once per job (see :func:`load_classifiers`)."""

    models: dict[str, LoadedModel]
    load_s: float

    def has(self, name: str) -> bool:
        return name in self.models

    def provenance(self) -> dict[str, dict]:
        """Per model: file name, sha256, runtime, where its class names come from."""
        return {m.name: {"file": os.path.basename(m.path), "sha256": m.sha256, "runtime": m.runtime,
                         "input": m.input_node, "output": m.output_node, "classes": m.classes_source}
                for m in self.models.values()}


def read_metadata(graph_path: str) -> dict | None:
    """The Essentia metadata JSON next to a model file (``<stem>.json``), or None."""
    meta_path = Path(graph_path).with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ClassifierError(f"metadata file {meta_path} is not valid JSON ({err}).",
                              "delete it and fetch the model again (make models).") from err


def _nodes_from_metadata(meta: dict | None, default_in: str, default_out: str) -> tuple[str, str]:
    if not meta or "schema" not in meta:
        return default_in, default_out
    inputs = meta["schema"].get("inputs") or []
    outputs = [o for o in meta["schema"].get("outputs") or [] if o.get("output_purpose") == "predictions"]
    return (inputs[0]["name"] if inputs else default_in), (outputs[0]["name"] if outputs else default_out)


def _classes_for(head: Head, meta: dict | None, path: str) -> tuple[tuple[str, ...], str]:
    json_classes = tuple(meta["classes"]) if meta and meta.get("classes") else None
    if json_classes and head.classes and json_classes != head.classes:
        raise ClassifierError(
            f"{path}: its metadata lists classes {list(json_classes)}, expected {list(head.classes)} for "
            f"{head.name}.", "the file is not the published Essentia model; fetch it again (make models).")
    if json_classes and head.positive and head.positive not in json_classes:
        raise ClassifierError(f"{path}: its metadata lists classes {list(json_classes)}, without the class "
                              f"'{head.positive}' that {head.name} is read for.",
                              "the file is not the published Essentia model; fetch it again (make models).")
    if json_classes:
        return json_classes, "metadata json"
    if head.classes:
        return head.classes, "built in (Essentia metadata)"
    raise ClassifierError(f"{head.name} needs its metadata file {Path(path).with_suffix('.json').name} "
                          "(it names the classes) next to the model file.",
                          "fetch the model with its .json (make models).")


def _onnx_session(path: str, threads: int):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def _load_head(head: Head, path: str, threads: int) -> LoadedModel:
    meta = read_metadata(path)
    classes, source = _classes_for(head, meta, path)
    input_node, output_node = _nodes_from_metadata(meta, head.input_node, head.output_node)
    if path.endswith(".onnx"):
        session = _onnx_session(path, threads)
        onnx_in = session.get_inputs()[0].name
        onnx_out = [o.name for o in session.get_outputs()]
        wanted = output_node if ":" in output_node else f"{output_node}:0"
        if wanted not in onnx_out:
            raise ClassifierError(f"{path}: no output named {wanted} (it has {onnx_out}).",
                                  "use the .pb model or an ONNX export of the same graph.")

        def predict_onnx(x, _s=session, _i=onnx_in, _o=wanted):
            return _s.run([_o], {_i: np.ascontiguousarray(x, dtype=np.float32)})[0]
        return LoadedModel(head.name, path, sha256_of(path), "onnxruntime", onnx_in, wanted, classes, source,
                           predict_onnx)
    es = _essentia_standard()
    algo = es.TensorflowPredict2D(graphFilename=path, input=input_node, output=output_node)

    def predict_essentia(x, _a=algo):
        return np.asarray(_a(np.ascontiguousarray(x, dtype=np.float32)))
    return LoadedModel(head.name, path, sha256_of(path), "essentia-tensorflow", input_node, output_node, classes,
                       source, predict_essentia)


def _load_backbone(backbone: Backbone, path: str) -> LoadedModel:
    if not path.endswith(".pb"):
        raise ClassifierError(f"{path}: the {backbone.name} backbone runs in essentia-tensorflow from its .pb file.",
                              f"use the official {backbone.name}.pb (models/manifest.yaml).")
    es = _essentia_standard()
    if backbone is EFFNET:
        # Essentia's own predictor: fixed batches of 64 patches, zero-padded
        # final batch whose padding predictions it drops (lastBatchMode "same").
        algo = es.TensorflowPredictEffnetDiscogs(graphFilename=path, input=backbone.input_node,
                                                 output=backbone.embedding_node, patchSize=backbone.patch_frames,
                                                 patchHopSize=backbone.patch_hop_frames)
        output_node = backbone.embedding_node
    else:
        # The generic predictor returns tags and embeddings from one session.
        algo = es.TensorflowPredict(graphFilename=path, inputs=[backbone.input_node],
                                    outputs=[backbone.tags_node, backbone.embedding_node])
        output_node = f"{backbone.tags_node}, {backbone.embedding_node}"
    classes = MSD_TAGS if backbone is MUSICNN else None
    meta = read_metadata(path)
    if classes and meta and meta.get("classes") and tuple(meta["classes"]) != classes:
        raise ClassifierError(f"{path}: its metadata lists tags {meta['classes']}, not the 50 MSD tags in order.",
                              "the file is not the published msd-musicnn-1; fetch it again (make models).")
    return LoadedModel(backbone.name, path, sha256_of(path), "essentia-tensorflow", backbone.input_node,
                       output_node, classes, "built in (musicnn MSD_LABELS)" if classes else "", algo)


def model_paths_from_files(files: list[str]) -> dict[str, str]:
    """Map model name -> graph file from a list of verified model files.

    ``.json`` metadata files are skipped (they are found next to their model);
    when a model has both a ``.pb`` and an ``.onnx`` file the ``.pb`` is used.
    """
    out: dict[str, str] = {}
    for path in sorted(files):
        stem, ext = os.path.splitext(os.path.basename(path))
        if ext == ".pb" or (ext == ".onnx" and stem not in out):
            out[stem] = path
    return out


def load_classifiers(model_paths: dict[str, str], threads: int = 1) -> Classifiers:
    """Load every model present, once.

    Parameters
    ----------
    model_paths : dict
        Essentia model name (e.g. ``"msd-musicnn-1"``) -> path of its ``.pb``
        (or ``.onnx`` for heads). A head's metadata JSON is read from the same
        folder (``<name>.json``). Models not listed are simply not available.
    threads : int
        CPU threads for onnxruntime heads.

    Raises
    ------
    ClassifierError
        Unknown model name, unusable file, metadata that contradicts the model.
    """
    started = time.perf_counter()
    unknown = sorted(set(model_paths) - set(BACKBONES) - set(HEADS))
    if unknown:
        raise ClassifierError(f"unknown classifier model(s) {unknown}; known: {sorted(BACKBONES) + sorted(HEADS)}.",
                              "check the classifier model list in models/manifest.yaml.")
    models = {}
    for name, path in model_paths.items():
        if not os.path.isfile(path):
            raise ClassifierError(f"model file {path} does not exist.", "run `make models`.")
        models[name] = (_load_backbone(BACKBONES[name], path) if name in BACKBONES
                        else _load_head(HEADS[name], path, threads))
    return Classifiers(models, time.perf_counter() - started)


# ---------------------------------------------------------------- inference

def to_model_input(signal: AudioSignal, quality: int) -> np.ndarray:
    """Mono downmix (channel mean) resampled to 16 kHz with Essentia Resample, float32."""
    mono = signal.mono()
    if signal.sample_rate == MODEL_SAMPLE_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32)
    es = _essentia_standard()
    resampler = es.Resample(inputSampleRate=float(signal.sample_rate), outputSampleRate=float(MODEL_SAMPLE_RATE),
                            quality=int(quality))
    return np.asarray(resampler(np.ascontiguousarray(mono, dtype=np.float32)), dtype=np.float32)


def _fit_to_patch(x16k: np.ndarray, backbone: Backbone) -> tuple[np.ndarray, dict]:
    if len(x16k) >= backbone.min_samples:
        return x16k, {}
    tiled = tile_to_length(x16k, backbone.min_samples)
    return tiled, {"tiled": f"signal repeated from {len(x16k) / MODEL_SAMPLE_RATE:.3f} s to "
                            f"{backbone.min_samples / MODEL_SAMPLE_RATE:.3f} s to fill one patch"}


def run_effnet(model: LoadedModel, x16k: np.ndarray) -> np.ndarray:
    """Per-patch Discogs-EffNet embeddings (patches, 1280) of a 16 kHz signal."""
    return np.asarray(model.predictor(np.ascontiguousarray(x16k, dtype=np.float32)), dtype=np.float32)


def run_musicnn(model: LoadedModel, x16k: np.ndarray, batch_patches: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch MSD tag probabilities (patches, 50) and embeddings (patches, 200) of a 16 kHz signal.

    Equal to Essentia ``TensorflowPredictMusiCNN`` with output ``model/Sigmoid``
    and ``model/dense/BiasAdd`` respectively, in one pass.
    """
    import essentia

    cut = patches(mel_frames(x16k), MUSICNN.patch_frames, MUSICNN.patch_hop_frames)
    tags, embeddings = [], []
    for start in range(0, len(cut), max(1, int(batch_patches))):
        pool = essentia.Pool()
        pool.set(MUSICNN.input_node, cut[start:start + batch_patches][:, None])
        out = model.predictor(pool)
        tags.append(np.asarray(out[MUSICNN.tags_node], dtype=np.float32).reshape(-1, len(MSD_TAGS)))
        embeddings.append(np.asarray(out[MUSICNN.embedding_node], dtype=np.float32).reshape(-1, MUSICNN.dims))
    if not tags:
        return np.zeros((0, len(MSD_TAGS)), np.float32), np.zeros((0, MUSICNN.dims), np.float32)
    return np.concatenate(tags), np.concatenate(embeddings)


def _heads_of(backbone: Backbone) -> list[Head]:
    return [h for h in HEADS.values() if h.backbone == backbone.name]


def _mark_all(result: FeatureResult, keys, reason: str) -> None:
    result.mark_all_absent(keys, reason)


def _keys_of(backbone: Backbone) -> list[str]:
    keys = [h.key for h in _heads_of(backbone)]
    return ([MUSICNN_TAGS_KEY] + keys) if backbone is MUSICNN else keys


def _apply_heads(models: Classifiers, backbone: Backbone, embeddings: np.ndarray, p: ClassifiersParams,
                 result: FeatureResult, methods: dict, timings: dict) -> None:
    for head in _heads_of(backbone):
        if not models.has(head.name):
            result.mark_absent(head.key, f"model {head.name} not available")
            continue
        model = models.models[head.name]
        classes = model.classes
        assert classes is not None, "a head's model always has classes (_classes_for raises otherwise)"
        started = time.perf_counter()
        out = np.asarray(model.predictor(embeddings), dtype=np.float64)
        timings[head.name] = round(time.perf_counter() - started, 4)
        if out.ndim != 2 or out.shape[0] != len(embeddings) or out.shape[1] != len(classes):
            raise ClassifierError(f"{head.name} returned shape {out.shape} for {len(embeddings)} embeddings and "
                                  f"{len(classes)} classes.", "the model file does not match its metadata.")
        mean = out.mean(axis=0)
        if head.positive is None:
            result.set(head.key, top_labels(mean, classes, p.min_probability, p.max_labels,
                                            p.decimals))
            methods[head.key] = (f"{backbone.name} -> {head.name} ({model.runtime}); mean over patches, "
                                 f"labels with p >= {p.min_probability}, at most {p.max_labels}")
        else:
            value = float(mean[classes.index(head.positive)])
            result.set(head.key, round(value, p.decimals))
            methods[head.key] = (f"{backbone.name} -> {head.name} ({model.runtime}); mean over patches of "
                                 f"p({head.positive})")


def classify(models: Classifiers, signal: AudioSignal, params: ClassifiersParams = ClassifiersParams()
             ) -> tuple[FeatureResult, dict[str, np.ndarray]]:
    """Run every available chain on one signal.

    Parameters
    ----------
    models : Classifiers
        From :func:`load_classifiers`; which models it holds decides which keys
        are computed. Missing ones are absent with "model X not available".
    signal : AudioSignal
        The audio at any sample rate and channel count.
    params : ClassifiersParams, optional
        Label thresholds, rounding, resampling and batching.

    Returns
    -------
    result : FeatureResult
        The keys of :data:`KEYS` (values or absent reasons) and ``meta``
        (input, patches, tiling, per-key method, model files with sha256, timings).
    embeddings : dict
        ``"discogs_effnet"`` (1280,) and/or ``"musicnn"`` (200,): float32 mean
        embedding over patches, for each backbone that ran.
    """
    p = params
    result = FeatureResult()
    embeddings: dict[str, np.ndarray] = {}
    methods: dict[str, str] = {}
    timings: dict[str, float] = {"model_load": round(models.load_s, 4)}
    result.meta.update({"models": models.provenance(), "methods": methods, "timings_s": timings,
                        "input_duration_s": round(signal.duration_s, 6)})
    if signal.is_digital_silence():
        _mark_all(result, KEYS, "silent")
        result.meta["embeddings"] = "not computed: silent input"
        return result, embeddings
    if signal.duration_s < p.min_duration_s:
        _mark_all(result, KEYS, f"too short ({signal.duration_s:.3f} s < {p.min_duration_s} s)")
        result.meta["embeddings"] = "not computed: input too short"
        return result, embeddings

    started = time.perf_counter()
    x16k = to_model_input(signal, p.resample_quality)
    timings["resample"] = round(time.perf_counter() - started, 4)
    result.meta["model_input"] = (
        f"mono downmix, {signal.sample_rate} -> {MODEL_SAMPLE_RATE} Hz (essentia Resample quality "
        f"{p.resample_quality})" if signal.sample_rate != MODEL_SAMPLE_RATE else "mono downmix at 16000 Hz")
    backbones_meta: dict[str, dict] = {}
    result.meta["backbones"] = backbones_meta

    for backbone in (EFFNET, MUSICNN):
        keys = _keys_of(backbone)
        if not models.has(backbone.name):
            _mark_all(result, keys, f"model {backbone.name} not available")
            continue
        x, info = _fit_to_patch(x16k, backbone)
        started = time.perf_counter()
        if backbone is EFFNET:
            patch_embeddings = run_effnet(models.models[backbone.name], x)
        else:
            tags, patch_embeddings = run_musicnn(models.models[backbone.name], x, p.batch_patches)
        timings[backbone.name] = round(time.perf_counter() - started, 4)
        if len(patch_embeddings) == 0:
            raise ClassifierError(f"{backbone.name} produced no embeddings for {len(x)} samples.",
                                  "report this with the input file; it should not happen.")
        if not np.all(np.isfinite(patch_embeddings)):
            raise ClassifierError(f"{backbone.name} produced non-finite embeddings.",
                                  "the model file may be damaged; fetch it again (make models).")
        info.update({"patches": int(len(patch_embeddings)),
                     "patch_s": round(backbone.patch_frames * MEL_HOP_SIZE / MODEL_SAMPLE_RATE, 4),
                     "patch_hop_s": round(backbone.patch_hop_frames * MEL_HOP_SIZE / MODEL_SAMPLE_RATE, 4)})
        backbones_meta[backbone.name] = info
        embeddings[backbone.embedding_name] = patch_embeddings.mean(axis=0, dtype=np.float64).astype(np.float32)
        if backbone is MUSICNN:
            result.set(MUSICNN_TAGS_KEY, top_labels(tags.mean(axis=0, dtype=np.float64), MSD_TAGS,
                                                    p.min_probability, p.max_labels, p.decimals))
            methods[MUSICNN_TAGS_KEY] = (f"{backbone.name} {backbone.tags_node} (essentia-tensorflow); mean over "
                                         f"patches, labels with p >= {p.min_probability}, at most "
                                         f"{p.max_labels}")
        _apply_heads(models, backbone, patch_embeddings, p, result, methods, timings)
    result.meta["embeddings"] = {name: f"mean over patches of {b.name} {b.embedding_node}, float32 ({b.dims},)"
                                 for b in (EFFNET, MUSICNN) for name in [b.embedding_name] if name in embeddings}
    return result, embeddings
