"""ADTOF Frame_RNN drum transcription model (PyTorch) and its input features.

The model is the "Frame_RNN" of Zehren, Alunno and Bientinesi, "ADTOF: A large
dataset of non-synthetic music for automatic drum transcription" (ISMIR 2021)
and "High-quality and reproducible automatic drum transcription from crowdsourced
data" (Signals, 2023). It maps a log-filtered spectrogram (100 frames per
second, 84 bands) to per-frame onset activations of five classes: bass drum,
snare drum, toms, hi-hat, cymbals + ride.

Input features, as the original computes them with madmom for Frame_RNN
(``adtof.io.mir.openMadmom``; hyperparameters ``diff=False``, ``normalize=False``,
``n_channels=1``):

* mono downmix (channel mean) at 44.1 kHz (other rates are resampled with soxr);
* frames of 2048 samples every 441 samples (100 fps); frame ``i`` is centred on
  sample ``i * 441`` (madmom ``FramedSignal``, ``origin=0``), zero-padded at both
  ends; ``ceil(n_samples / 441)`` frames;
* symmetric Hann window (``numpy.hanning(2048)``), FFT magnitude of bins 0..1023;
* madmom ``LogarithmicFilterbank``: 12 bands per octave aligned to A4 = 440 Hz
  between 20 Hz and 20 kHz, triangular filters on unique FFT bins, each
  normalised to unit area: 84 bands at 44.1 kHz;
* ``log10(1 + x)``. No per-track normalisation, no spectral difference.

Network (Keras original, converted weights published as a PyTorch state_dict
by the ADTOF-pytorch port):

* two blocks of [Conv2D 3x3 "same" + ReLU, BatchNorm, Conv2D 3x3 "same" + ReLU,
  BatchNorm, MaxPool (1, 3) over frequency with TF "same" padding, Dropout]
  with 32 then 64 filters (84 -> 28 -> 10 bands); BatchNorm epsilon 1e-3;
* per frame, the (10 bands x 64 channels) map flattened band-major (Keras
  channels-last order) to 640 features;
* three bidirectional GRU layers of 60 units (Keras ``reset_after=True``, which
  is exactly PyTorch's GRU formulation), over the whole track;
* a dense layer to 5 outputs with a sigmoid.

The receptive field of the convolutions is 9 frames, so the original's context
of 9 frames adds no frame stacking.

Verification: the spectrogram equals madmom's processor chain to 1e-5, and with
the ADTOF-PyTorch port's deviations switched on (``port_filterbank``,
``pool_padding="zeros"``, ``drums.pick_peaks_port``) the network reproduces the
port's published transcription of its test clip hit for hit (tests/test_adtof.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MirflowError

if TYPE_CHECKING:  # importing torch at run time is deferred to the first network built
    from torch import nn

#: Sample rate the model was trained at (Hz).
MODEL_SAMPLE_RATE = 44100
#: Activation frames per second.
FPS = 100
#: Samples between frame centres at 44.1 kHz.
HOP_SIZE = MODEL_SAMPLE_RATE // FPS
#: STFT frame length in samples.
FRAME_SIZE = 2048
BANDS_PER_OCTAVE = 12
FMIN_HZ = 20.0
FMAX_HZ = 20000.0
#: Number of filterbank bands with the settings above.
N_BINS = 84
CONV_FILTERS = (32, 64)
GRU_UNITS = (60, 60, 60)
N_CLASSES = 5
#: Class order of the model output.
CLASS_LABELS = ("BD", "SD", "TT", "HH", "CY+RD")
#: Frames of context each side that one output frame of the CNN depends on
#: (four 3x3 convolutions).
CNN_HALO_FRAMES = 4
#: Spectrogram frames per FFT batch and per CNN chunk: bounds memory on long tracks.
_FFT_BATCH = 4096
_CNN_CHUNK = 6000


# --------------------------------------------------------------------------
# Input features
# --------------------------------------------------------------------------

def resample_mono(mono: np.ndarray, sample_rate: int, target_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Resample a mono signal with soxr (VHQ) when its rate differs from ``target_rate``.

    Parameters
    ----------
    mono : np.ndarray
        float signal, shape (samples,), full scale 1.0.
    sample_rate, target_rate : int
        Rates in Hz.

    Returns
    -------
    np.ndarray
        float32, shape (samples * target_rate / sample_rate,) (rounded by soxr).
    """
    mono = np.asarray(mono, dtype=np.float32)
    if int(sample_rate) == int(target_rate):
        return mono
    import soxr

    return soxr.resample(mono, int(sample_rate), int(target_rate), quality="VHQ").astype(np.float32)


_FILTERBANK_CACHE: dict[tuple, np.ndarray] = {}


def log_filterbank(sample_rate: int = MODEL_SAMPLE_RATE, frame_size: int = FRAME_SIZE,
                   bands_per_octave: int = BANDS_PER_OCTAVE, fmin_hz: float = FMIN_HZ,
                   fmax_hz: float = FMAX_HZ) -> np.ndarray:
    """madmom's logarithmic triangular filterbank, as ADTOF configures it.

    Returns
    -------
    np.ndarray
        float32, shape (frame_size // 2, n_bands): weights from FFT bin to band.
        Each band's triangle has unit area (``norm_filters=True``); duplicate
        bins are merged (``unique_filters=True``).
    """
    key = (sample_rate, frame_size, bands_per_octave, fmin_hz, fmax_hz)
    if key not in _FILTERBANK_CACHE:
        from madmom.audio.filters import LogarithmicFilterbank
        from madmom.audio.stft import fft_frequencies

        bin_hz = fft_frequencies(frame_size // 2, sample_rate)
        bank = LogarithmicFilterbank(bin_hz, num_bands=bands_per_octave, fmin=fmin_hz, fmax=fmax_hz,
                                     fref=440.0, norm_filters=True, unique_filters=True)
        _FILTERBANK_CACHE[key] = np.ascontiguousarray(np.asarray(bank, dtype=np.float32))
    return _FILTERBANK_CACHE[key]


def n_frames_for(n_samples: int, hop_size: int = HOP_SIZE) -> int:
    """Frames madmom's FramedSignal (``end="normal"``) yields: ``ceil(n_samples / hop_size)``."""
    return int(-(-int(n_samples) // int(hop_size)))


def log_filtered_spectrogram(mono: np.ndarray, sample_rate: int, filterbank: np.ndarray | None = None) -> np.ndarray:
    """ADTOF's input: log10(1 + log-filtered magnitude spectrogram) at 100 fps.

    Parameters
    ----------
    mono : np.ndarray
        Mono signal, shape (samples,), full scale 1.0, at ``sample_rate``.
    sample_rate : int
        Hz; resampled to 44.1 kHz first when different.
    filterbank : np.ndarray, optional
        (1024, bands) weights replacing ``log_filterbank()``; only for experiments
        (the published weights expect the default).

    Returns
    -------
    np.ndarray
        float32, shape (ceil(samples_at_44k1 / 441), 84). Row ``i`` describes
        the 2048 samples centred on time ``i / 100`` s.
    """
    x = resample_mono(mono, sample_rate)
    n_frames = n_frames_for(x.size)
    half = FRAME_SIZE // 2
    # Zero padding of madmom's signal_frame(pad=0): half a frame before sample 0
    # and enough after the last sample for the last frame.
    padded = np.zeros(half + n_frames * HOP_SIZE + half, dtype=np.float64)
    padded[half:half + x.size] = x
    window = np.hanning(FRAME_SIZE)
    bank = log_filterbank() if filterbank is None else np.asarray(filterbank, dtype=np.float32)
    out = np.empty((n_frames, bank.shape[1]), dtype=np.float32)
    frames_view = np.lib.stride_tricks.sliding_window_view(padded, FRAME_SIZE)[::HOP_SIZE][:n_frames]
    for start in range(0, n_frames, _FFT_BATCH):
        frames = frames_view[start:start + _FFT_BATCH]
        magnitude = np.abs(np.fft.rfft(frames * window, axis=1)[:, :half]).astype(np.float32)
        out[start:start + len(frames)] = magnitude @ bank
    np.log10(out + 1.0, out=out)
    return out


def port_filterbank() -> np.ndarray:
    """The filterbank of the ADTOF-PyTorch port (xavriley/ADTOF-pytorch), for comparisons only.

    The port spaces its 12 bands per octave from exactly 20 Hz instead of
    madmom's A440-aligned grid, so 65 of its 86 band edges fall on other FFT
    bins than the original's (centres about half a semitone apart); triangles
    and unit-area normalisation are madmom's. Shape (1024, 84), float32.
    """
    from madmom.audio.filters import Filterbank, TriangularFilter
    from madmom.audio.stft import fft_frequencies

    bin_hz = fft_frequencies(FRAME_SIZE // 2, MODEL_SAMPLE_RATE)
    centres = FMIN_HZ * 2.0 ** (np.arange(int(np.log2(FMAX_HZ / FMIN_HZ) * BANDS_PER_OCTAVE) + 2) / BANDS_PER_OCTAVE)
    centres = centres[centres <= FMAX_HZ * (1 + 1e-12)]
    bins = np.unique([int(np.argmin(np.abs(bin_hz - f))) for f in centres])
    filters = TriangularFilter.filters(bins, norm=True, overlap=True)
    return np.asarray(Filterbank.from_filters(filters, bin_hz), dtype=np.float32)


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------

def _torch():
    import torch

    return torch


def _build_network_classes() -> type[nn.Module]:
    # imported here, not through _torch(), so that the type checker sees the real base class
    import torch
    from torch import nn

    class FrequencyMaxPoolSame(nn.Module):
        """Max pooling over the last (frequency) axis, kernel = stride = ``size``,
        with TensorFlow "same" padding: ceil(bands / size) output bands, the
        padding split as TF does (smaller half first). ``pad_value`` -inf means
        padded positions never win, as in TF; the ADTOF-PyTorch port pads with 0."""

        def __init__(self, size: int = 3, pad_value: float = float("-inf")):
            super().__init__()
            self.size = size
            self.pad_value = pad_value

        def forward(self, x):
            bands = x.shape[-1]
            out_bands = -(-bands // self.size)
            pad = max(0, (out_bands - 1) * self.size + self.size - bands)
            if pad:
                x = nn.functional.pad(x, (pad // 2, pad - pad // 2), value=self.pad_value)
            return nn.functional.max_pool2d(x, kernel_size=(1, self.size), stride=(1, self.size))

    class FrameRNN(nn.Module):
        """ADTOF Frame_RNN. ``forward`` maps (batch, frames, 84) log-filtered
        spectrogram frames to (batch, frames, 5) activations in [0, 1].

        Module names match the published state_dict (``cnn_blocks.{i}.{0,2,3,5}``,
        ``gru_layers.{i}``, ``output_layer``).
        """

        def __init__(self, n_bins: int = N_BINS, conv_filters=CONV_FILTERS, gru_units=GRU_UNITS,
                     n_classes: int = N_CLASSES, dropout: float = 0.3, pool_pad_value: float = float("-inf")):
            super().__init__()
            self.n_bins = n_bins
            blocks = []
            in_channels, bands = 1, n_bins
            for filters in conv_filters:
                blocks.append(nn.Sequential(
                    nn.Conv2d(in_channels, filters, kernel_size=3, padding=1),
                    nn.ReLU(),
                    nn.BatchNorm2d(filters, eps=1e-3),
                    nn.Conv2d(filters, filters, kernel_size=3, padding=1),
                    nn.ReLU(),
                    nn.BatchNorm2d(filters, eps=1e-3),
                    FrequencyMaxPoolSame(3, pool_pad_value),
                    nn.Dropout(dropout),
                ))
                in_channels, bands = filters, -(-bands // 3)
            self.cnn_blocks = nn.ModuleList(blocks)
            self.cnn_features = in_channels * bands
            grus = []
            size = self.cnn_features
            for units in gru_units:
                grus.append(nn.GRU(size, units, batch_first=True, bidirectional=True))
                size = 2 * units
            self.gru_layers = nn.ModuleList(grus)
            self.output_layer = nn.Linear(size, n_classes)

        def cnn(self, spec):
            """(batch, frames, bins) -> (batch, frames, cnn_features), band-major per frame."""
            x = spec.unsqueeze(1)
            for block in self.cnn_blocks:
                x = block(x)
            batch, channels, frames, bands = x.shape
            return x.permute(0, 2, 3, 1).reshape(batch, frames, bands * channels)

        def cnn_chunked(self, spec, chunk: int = _CNN_CHUNK):
            """Same result as ``cnn`` computed on time chunks with a
            ``CNN_HALO_FRAMES`` halo, so memory stays bounded on long tracks."""
            frames = spec.shape[1]
            if frames <= chunk:
                return self.cnn(spec)
            parts = []
            for start in range(0, frames, chunk):
                stop = min(frames, start + chunk)
                lo, hi = max(0, start - CNN_HALO_FRAMES), min(frames, stop + CNN_HALO_FRAMES)
                feats = self.cnn(spec[:, lo:hi])
                parts.append(feats[:, start - lo:start - lo + (stop - start)])
            return torch.cat(parts, dim=1)

        def recurrent(self, feats):
            """(batch, frames, cnn_features) -> (batch, frames, n_classes) activations."""
            x = feats
            for gru in self.gru_layers:
                x, _ = gru(x)
            return torch.sigmoid(self.output_layer(x))

        def forward(self, spec):
            return self.recurrent(self.cnn_chunked(spec))

    return FrameRNN


_FRAME_RNN_CLASS = None


def frame_rnn_class():
    """The ``FrameRNN`` torch module class (built on first use so that importing
    this module does not import torch)."""
    global _FRAME_RNN_CLASS
    if _FRAME_RNN_CLASS is None:
        _FRAME_RNN_CLASS = _build_network_classes()
    return _FRAME_RNN_CLASS


#: Value the frequency max-pooling pads with: "tf_same" (-inf, as TensorFlow, the
#: original) or "zeros" (as the ADTOF-PyTorch port).
POOL_PADDINGS = {"tf_same": float("-inf"), "zeros": 0.0}


def new_frame_rnn(pool_padding: str = "tf_same"):
    """A randomly initialised Frame_RNN of the published architecture (eval mode)."""
    if pool_padding not in POOL_PADDINGS:
        raise ValueError(f"pool_padding must be one of {sorted(POOL_PADDINGS)}, got {pool_padding!r}")
    return frame_rnn_class()(pool_pad_value=POOL_PADDINGS[pool_padding]).eval()


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU (CUDA or ROCm builds), else ``"cpu"``.

    Raises
    ------
    MirflowError
        If a CUDA device is requested but torch sees none.
    """
    from ..separation import pick_device

    return pick_device(str(device), "drums.device")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    from ..models import sha256_file

    return sha256_file(path)


@dataclass
class LoadedModel:
    """A Frame_RNN ready for inference.

    Attributes
    ----------
    network : torch.nn.Module
        The FrameRNN in eval mode, float32, on ``device``.
    device : str
        "cpu" or "cuda[:n]".
    path : str
        The weights file.
    sha256 : str
        SHA-256 of the weights file.
    """

    network: nn.Module
    device: str
    path: str
    sha256: str


_EXPECTED_INFO = {"n_bins": N_BINS, "conv_filters": list(CONV_FILTERS), "gru_units": list(GRU_UNITS),
                  "output_classes": N_CLASSES}


def load_model(path: str | os.PathLike, device: str = "auto", pool_padding: str = "tf_same") -> LoadedModel:
    """Load ADTOF Frame_RNN weights into the PyTorch network.

    Parameters
    ----------
    path : str or PathLike
        A ``torch.save``'d checkpoint: either the published dict
        ``{"model_weights": state_dict, "model_info": {...}}`` or a bare state_dict.
        Loaded with ``weights_only=True`` (no code execution) and ``strict=True``.
    device : str
        "auto" (CUDA/ROCm when available, else CPU), "cpu" or "cuda[:n]".
    pool_padding : str
        "tf_same" (default, the original Keras model) or "zeros" (reproduces the
        ADTOF-PyTorch port; only for comparisons).

    Returns
    -------
    LoadedModel

    Raises
    ------
    MirflowError
        If the file is missing or does not hold the Frame_RNN architecture.
    """
    torch = _torch()
    path = str(path)
    if not os.path.isfile(path):
        raise MirflowError(f"ADTOF weights file '{path}' does not exist.",
                           "run the model download step (see models/README.md) or fix the path.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise MirflowError(f"ADTOF weights file '{path}' does not contain a state_dict.",
                           "download the published adtof_frame_rnn_pytorch_weights.pth again.")
    state = checkpoint.get("model_weights", checkpoint)
    info = checkpoint.get("model_info") if "model_weights" in checkpoint else None
    if isinstance(info, dict):
        for key, expected in _EXPECTED_INFO.items():
            if key in info and info[key] != expected:
                raise MirflowError(
                    f"ADTOF weights file '{path}' describes {key}={info[key]!r}, this code implements {expected!r}.",
                    "use the Frame_RNN weights (adtof_frame_rnn_pytorch_weights.pth).")
    network = new_frame_rnn(pool_padding)
    try:
        network.load_state_dict(dict(state), strict=True)
    except RuntimeError as err:
        raise MirflowError(f"ADTOF weights file '{path}' does not match the Frame_RNN architecture: {err}",
                           "use the Frame_RNN weights (adtof_frame_rnn_pytorch_weights.pth).") from err
    resolved = resolve_device(device)
    network = network.float().to(resolved).eval()
    return LoadedModel(network=network, device=resolved, path=path, sha256=file_sha256(path))


def predict_activations(model: LoadedModel, spectrogram: np.ndarray) -> np.ndarray:
    """Run Frame_RNN on a whole track's spectrogram.

    Parameters
    ----------
    model : LoadedModel
    spectrogram : np.ndarray
        Output of ``log_filtered_spectrogram``, shape (frames, 84).

    Returns
    -------
    np.ndarray
        float32, shape (frames, 5): activation in [0, 1] per frame (100 fps) and
        class (``CLASS_LABELS`` order).
    """
    torch = _torch()
    spectrogram = np.asarray(spectrogram, dtype=np.float32)
    if spectrogram.ndim != 2 or spectrogram.shape[1] != model.network.n_bins:
        raise ValueError(f"spectrogram must be (frames, {model.network.n_bins}), got {spectrogram.shape}")
    if spectrogram.shape[0] == 0:
        return np.zeros((0, N_CLASSES), dtype=np.float32)
    with torch.inference_mode():
        x = torch.from_numpy(spectrogram).to(model.device).unsqueeze(0)
        y = model.network(x)
    return y[0].float().cpu().numpy()
