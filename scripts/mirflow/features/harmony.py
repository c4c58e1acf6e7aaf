"""Harmony and key: pitch-class profiles, tonal interval vector, key estimates,
and per-stem harmonic movement/variance.

Family ``harmony`` (:func:`compute_harmony`), one analysed signal per track:
the harmonic stems (bass + other + vocals, summed; drums excluded) when stems
are given, else the full mix. ``meta["input"]`` says which. Every pitch-class
vector below is indexed C = 0, C# = 1, ..., B = 11.

* ``chroma_0..11``: Essentia HPCP (frame 4096, hop 2048, Blackman-Harris 62
  window, SpectralPeaks 100-4000 Hz max 100 peaks magnitude >= 1e-5, HPCP size
  12, bandPreset with split 500 Hz, 5 harmonics, squaredCosine weighting,
  nonLinear, per-frame unitMax, reference 261.63 Hz so bin 0 is C), averaged
  over frames, then divided by its sum (unitSum: a distribution over pitch
  classes). This is the old tool's documented chroma (old-system.md section 1.5,
  "doc version", which also used vocals).
* ``hpcp_0..11``: Essentia HPCP (hann 4096/2048, SpectralPeaks 40-5000 Hz max
  100 peaks magnitude >= 1e-5 ordered by magnitude, 8 harmonics, cosine
  weighting, nonLinear, per-frame unitMax, reference 261.63 Hz), averaged over
  frames then divided by its maximum. Essentia defaults for everything not
  named (bandPreset True, bandSplitFrequency 500 Hz, windowSize 1 semitone),
  as the old tool.
* ``tiv_0..11``: tonal interval vector of the mean HPCP: L1-normalise, DFT,
  coefficients k = 1..6 weighted 3, 8, 11.5, 15, 14.5, 7.5 (Bernardes et al.
  2016), real and imaginary parts interleaved, L2-normalised.
* ``tonic`` / ``tonic_scale`` / ``tonic_strength``: Essentia ``Key`` with
  profile 'edmm' (Faraldo's EDM-tuned profile) on the mean HPCP. Essentia's
  Key expects bin 0 = A, so the C-based vector is rotated before the call and
  the returned note name is converted to a pitch class with C = 0 (the old
  tool passed its C-based vector straight in, which names the wrong key, and
  mapped flat names such as "Bb" to 0).
* ``key`` / ``key_confidence``: madmom ``CNNKeyRecognitionProcessor``
  (Korzeniowski & Widmer 2018, bundled model) on the mono analysed signal
  resampled to 44.1 kHz; ``key`` is madmom's label (e.g. "A minor", "Db
  major"), ``key_confidence`` the softmax probability of that label (0-1,
  1/24 = chance).

Family ``harmony_stems`` (:func:`compute_harmony_stems`), one stem per call,
keys suffixed by the caller: ``harmonic_movement`` and ``harmonic_variance``
from ``librosa.feature.chroma_cqt`` (hop 512, librosa defaults otherwise),
each frame divided by its sum, as the old tool. Unlike the old tool, frames
whose RMS is below ``active_frame_dbfs`` are left out (chroma of near-silence
is noise, normalised to full weight by chroma_cqt), and movement is averaged
only over pairs of consecutive active frames.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..audio import AudioSignal
from ..errors import MirflowError
from ..params import as_dict, param, section
from ..result import FeatureResult
from . import Family

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: Note spellings Essentia and madmom use -> pitch class (C = 0).
_NOTE_TO_PC = {
    "C": 0, "B#": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "Fb": 4, "F": 5, "E#": 5,
    "F#": 6, "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11, "Cb": 11,
}
#: Pitch class of Essentia Key's input bin 0 (it assumes an A-based profile).
_ESSENTIA_KEY_BIN0_PC = 9
TIV_WEIGHTS = (3.0, 8.0, 11.5, 15.0, 14.5, 7.5)
#: Frequency of pitch class C (C4) used as HPCP reference so that bin 0 is C.
C4_HZ = 261.63

#: Essentia ``Windowing`` types.
_WINDOWS = ("hamming", "hann", "hannnsgcq", "triangular", "square", "blackmanharris62", "blackmanharris70",
            "blackmanharris74", "blackmanharris92")
#: Essentia ``Key`` profile types (``KeyExtractor`` also knows "faraldo" and "pentatonic").
KEY_PROFILES = ("diatonic", "krumhansl", "temperley", "weichai", "tonictriad", "temperley2005", "thpcp", "shaath",
                "gomez", "noland", "edmm", "edma", "bgate", "braw")
_STEMS = ("bass", "drums", "other", "vocals")


@dataclass(frozen=True)
class HpcpParams:
    """One Essentia HPCP computation (``harmony.chroma``, ``harmony.hpcp``): frames, spectral peaks, HPCP."""

    frame_size: int = param(4096, unit="samples", minimum=64, doc="Frame length")
    hop_size: int = param(2048, unit="samples", minimum=1, doc="Hop between frames")
    window: str = param("hann", choices=_WINDOWS, doc="Essentia window type")
    min_hz: float = param(40.0, unit="Hz", above=0.0, doc="Lowest spectral peak and HPCP frequency")
    max_hz: float = param(5000.0, unit="Hz", above=0.0, doc="Highest spectral peak and HPCP frequency")
    max_peaks: int = param(100, minimum=1, doc="Spectral peaks per frame (the loudest)")
    magnitude_threshold: float = param(1e-5, minimum=0.0, doc="Smallest spectral peak magnitude")
    harmonics: int = param(8, minimum=0, doc="Harmonics each peak contributes to (0: the fundamental only)")
    band_preset: bool = param(True, doc="Weight peaks below and above band_split_hz separately")
    band_split_hz: float = param(500.0, unit="Hz", above=0.0, doc="Split frequency of band_preset")
    weight_type: str = param("cosine", choices=("none", "cosine", "squaredCosine"), doc="Peak weighting")
    non_linear: bool = param(True, doc="Essentia's non-linear post-processing (needs unitMax frames)")
    reference_hz: float = param(C4_HZ, unit="Hz", above=0.0, doc="Frequency of bin 0 (C4: bin 0 is C)")


@dataclass(frozen=True)
class HarmonyParams:
    """Parameters of ``harmony`` (config section ``harmony``)."""

    harmonic_stems: tuple[str, ...] = param(("bass", "other", "vocals"), choices=_STEMS,
                                            doc="Stems summed for the analysis when the track has stems")
    silence_rms_dbfs: float = param(-70.0, unit="dBFS", doc="At or below this whole-signal RMS every key is silent")
    # A key needs more than a few frames.
    min_duration_s: float = param(1.0, unit="s", minimum=0.0, doc="Shorter input: every key absent (too short)")
    chroma: HpcpParams = section(
        HpcpParams(window="blackmanharris62", min_hz=100.0, max_hz=4000.0, harmonics=5, weight_type="squaredCosine"),
        doc="HPCP of chroma_0..11 (the old tool's documented chroma)")
    hpcp: HpcpParams = section(HpcpParams(), doc="HPCP of hpcp_0..11, tiv_0..11 and the Essentia key")
    key_profile: str = param("edmm", choices=KEY_PROFILES, doc="Essentia Key profile of tonic/tonic_scale")
    madmom_key: bool = param(True, doc="Run madmom's CNN key recogniser (key, key_confidence)")


@dataclass(frozen=True)
class HarmonyStemsParams:
    """Parameters of ``harmony_stems`` (config section ``harmony_stems``)."""

    hop_length: int = param(512, unit="samples", minimum=1, doc="Hop of chroma_cqt and of the frame RMS")
    # Below ~3 s librosa's CQT filters for the lowest octaves (from C1, 32.7 Hz) are longer than the downsampled
    # signal.
    min_duration_s: float = param(3.0, unit="s", minimum=0.0, doc="Shorter stems are absent (too short)")
    active_frame_dbfs: float = param(-60.0, unit="dBFS", doc="Frames (2048-sample RMS) quieter than this are left out")
    variance_scale: float = param(0.1, above=0.0, doc="harmonic_variance = min(mean per-bin variance / this, 1)")


# ----------------------------------------------------------------------------
# small pure helpers
# ----------------------------------------------------------------------------


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` in dBFS (full scale 1.0); -inf for all zeros."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def pitch_class_of(note: str) -> int:
    """Pitch class (C = 0) of a note name such as "Bb", "C#" or "A"."""
    try:
        return _NOTE_TO_PC[note.strip()]
    except KeyError:
        raise ValueError(f"unknown note name {note!r}") from None


def parse_key_label(label: str) -> tuple[int, str]:
    """Split a key label such as "Db major" into (pitch class, mode)."""
    note, mode = label.split()
    return pitch_class_of(note), mode.lower()


def harmonic_mix(stems: Mapping[str, AudioSignal], names) -> tuple[np.ndarray, int, list[str]]:
    """Sum the mono downmixes of the named stems that are present.

    Returns
    -------
    mono : np.ndarray
        float32, length of the longest stem (shorter ones zero-padded).
    sample_rate : int
    used : list of str
        The stems that were summed.
    """
    used = [name for name in names if name in stems]
    if not used:
        raise ValueError(f"none of the stems {list(names)} is present")
    rates = {stems[name].sample_rate for name in used}
    if len(rates) != 1:
        raise MirflowError(
            f"stems {used} have different sample rates {sorted(rates)}",
            "re-run stem separation so that all stems share the mix's sample rate.",
        )
    length = max(stems[name].frames for name in used)
    mono = np.zeros(length, dtype=np.float64)
    for name in used:
        stem = stems[name].mono()
        mono[: len(stem)] += stem
    return mono.astype(np.float32), rates.pop(), used


def mean_hpcp(mono: np.ndarray, sample_rate: int, config: HpcpParams) -> np.ndarray:
    """Frame-averaged Essentia HPCP, shape (12,), bin 0 at ``config.reference_hz``.

    Each frame's HPCP is unitMax-normalised (required by ``nonLinear``);
    frames without spectral peaks contribute zeros. Returns zeros when the
    signal is shorter than one frame and yields no frames.

    Parameters
    ----------
    mono : np.ndarray
        Mono signal, full scale 1.0.
    sample_rate : int
        Hz.
    config : HpcpParams
        Frames, spectral peaks and HPCP settings.
    """
    import essentia

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    import essentia.standard as es

    frame_size, hop_size = int(config.frame_size), int(config.hop_size)
    window = es.Windowing(type=config.window, size=frame_size)
    spectrum = es.Spectrum(size=frame_size)
    peaks = es.SpectralPeaks(
        maxPeaks=int(config.max_peaks), magnitudeThreshold=float(config.magnitude_threshold),
        minFrequency=float(config.min_hz), maxFrequency=float(config.max_hz),
        orderBy="magnitude", sampleRate=float(sample_rate),
    )
    hpcp = es.HPCP(
        size=12, harmonics=int(config.harmonics), minFrequency=float(config.min_hz),
        maxFrequency=float(config.max_hz), bandPreset=bool(config.band_preset),
        bandSplitFrequency=float(config.band_split_hz), weightType=config.weight_type,
        nonLinear=bool(config.non_linear), normalized="unitMax",
        referenceFrequency=float(config.reference_hz), sampleRate=float(sample_rate),
    )
    total = np.zeros(12, dtype=np.float64)
    count = 0
    audio = np.ascontiguousarray(mono, dtype=np.float32)
    for frame in es.FrameGenerator(audio, frameSize=frame_size, hopSize=hop_size, startFromZero=True):
        freqs, mags = peaks(spectrum(window(frame)))
        total += hpcp(freqs, mags)
        count += 1
    return total / count if count else total


def sum_normalised(profile: np.ndarray) -> np.ndarray:
    """``profile`` divided by its sum (unitSum). Raises on an all-zero profile."""
    total = float(np.sum(profile))
    if total <= 0:
        raise ValueError("pitch-class profile is all zeros")
    return np.asarray(profile, dtype=np.float64) / total


def max_normalised(profile: np.ndarray) -> np.ndarray:
    """``profile`` divided by its maximum (unitMax). Raises on an all-zero profile."""
    peak = float(np.max(profile))
    if peak <= 0:
        raise ValueError("pitch-class profile is all zeros")
    return np.asarray(profile, dtype=np.float64) / peak


def tonal_interval_vector(profile: np.ndarray, weights=TIV_WEIGHTS) -> np.ndarray:
    """Tonal interval vector of a 12-bin pitch-class profile.

    Parameters
    ----------
    profile : np.ndarray
        (12,), non-negative, not all zero; any scale (it is L1-normalised).
    weights : sequence of 6 floats
        Weights of DFT coefficients k = 1..6.

    Returns
    -------
    np.ndarray
        (12,) = [w1 Re X1, w1 Im X1, ..., w6 Re X6, w6 Im X6] / its L2 norm.
        Unit L2 norm; invariant to the profile's scale.

    Raises
    ------
    ValueError
        When every weighted coefficient is zero (a flat profile has no
        interval content).
    """
    spectrum = np.fft.fft(sum_normalised(profile))
    weighted = np.asarray(weights, dtype=np.float64) * spectrum[1:7]
    tiv = np.empty(12, dtype=np.float64)
    tiv[0::2] = weighted.real
    tiv[1::2] = weighted.imag
    norm = float(np.linalg.norm(tiv))
    if norm < 1e-12:
        raise ValueError("flat pitch-class profile: tonal interval vector is zero")
    return tiv / norm


def essentia_key(profile_c: np.ndarray, profile_type: str = "edmm") -> tuple[int, str, float]:
    """Key of a C-based 12-bin profile with Essentia's ``Key`` algorithm.

    Parameters
    ----------
    profile_c : np.ndarray
        (12,), bin 0 = C.
    profile_type : str
        Essentia key profile ('edmm', 'bgate', 'temperley', ...).

    Returns
    -------
    tonic : int
        Pitch class, C = 0.
    scale : str
        'major' or 'minor'.
    strength : float
        Essentia's key strength (correlation with the best key profile).
    """
    import essentia.standard as es

    profile_a = np.roll(np.asarray(profile_c, dtype=np.float32), -_ESSENTIA_KEY_BIN0_PC)
    key, scale, strength, _ = es.Key(profileType=profile_type, pcpSize=12)(profile_a)
    return pitch_class_of(key), str(scale), float(strength)


_MADMOM_PROCESSOR = None


def madmom_key_processor():
    """madmom's CNN key model, built once per process (a warm worker builds it before forking jobs)."""
    global _MADMOM_PROCESSOR
    if _MADMOM_PROCESSOR is None:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
        from madmom.features.key import CNNKeyRecognitionProcessor

        _MADMOM_PROCESSOR = CNNKeyRecognitionProcessor()
    return _MADMOM_PROCESSOR


def madmom_key(mono: np.ndarray, sample_rate: int) -> tuple[str, float]:
    """Global key with madmom's CNN key recogniser.

    Parameters
    ----------
    mono : np.ndarray
        Mono signal, full scale 1.0; resampled to 44.1 kHz (soxr_hq) if needed.
    sample_rate : int
        Hz.

    Returns
    -------
    label : str
        e.g. "A minor", "Db major".
    confidence : float
        Softmax probability of that label (0-1).
    """
    from madmom.features.key import key_prediction_to_label

    processor = madmom_key_processor()
    audio = np.asarray(mono, dtype=np.float32)
    if sample_rate != 44100:
        import librosa

        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=44100, res_type="soxr_hq")
    probabilities = np.asarray(processor(audio))
    return str(key_prediction_to_label(probabilities)), float(np.max(probabilities))


def chroma_frames(mono: np.ndarray, sample_rate: int, hop_length: int = 512) -> np.ndarray:
    """librosa ``chroma_cqt`` (defaults, given hop), shape (12, frames), bin 0 = C."""
    import librosa

    return librosa.feature.chroma_cqt(y=np.asarray(mono, dtype=np.float32), sr=sample_rate,
                                      hop_length=hop_length, n_chroma=12)


def frame_rms_dbfs(mono: np.ndarray, hop_length: int, n_frames: int) -> np.ndarray:
    """RMS in dBFS of centred 2048-sample frames at ``hop_length``, ``n_frames`` long."""
    import librosa

    rms = librosa.feature.rms(y=np.asarray(mono, dtype=np.float32), frame_length=2048,
                              hop_length=hop_length, center=True)[0]
    rms = rms[:n_frames]
    if len(rms) < n_frames:
        rms = np.pad(rms, (0, n_frames - len(rms)))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms)


def harmonic_movement(chroma: np.ndarray, active: np.ndarray) -> float:
    """Mean Euclidean distance between consecutive sum-normalised chroma frames, / sqrt(2).

    Parameters
    ----------
    chroma : np.ndarray
        (12, frames), non-negative.
    active : np.ndarray
        (frames,) bool; only pairs of consecutive frames that are both active
        (and have non-zero chroma) count.

    Returns
    -------
    float
        0 (no change) to 1 (every step jumps between disjoint pitch classes:
        sqrt(2) is the largest distance between two sum-normalised vectors).

    Raises
    ------
    ValueError
        When no pair of consecutive usable frames exists.
    """
    sums = chroma.sum(axis=0)
    usable = active & (sums > 0)
    pairs = usable[:-1] & usable[1:]
    if not np.any(pairs):
        raise ValueError("fewer than 2 consecutive non-silent frames")
    normalised = chroma[:, usable] / sums[usable]
    full = np.zeros_like(chroma, dtype=np.float64)
    full[:, usable] = normalised
    steps = np.linalg.norm(np.diff(full, axis=1), axis=0)[pairs]
    return float(np.mean(steps) / math.sqrt(2.0))


def harmonic_variance_raw(chroma: np.ndarray, active: np.ndarray) -> float:
    """Mean over the 12 bins of each bin's variance over the active sum-normalised frames.

    At most 11/144 (about 0.0764), reached when every frame is a single
    pitch class and all 12 occur equally often.
    """
    sums = chroma.sum(axis=0)
    usable = active & (sums > 0)
    if np.count_nonzero(usable) < 2:
        raise ValueError("fewer than 2 non-silent frames")
    normalised = chroma[:, usable] / sums[usable]
    return float(np.mean(np.var(normalised, axis=1)))


# ----------------------------------------------------------------------------
# family entry points
# ----------------------------------------------------------------------------

CHROMA_KEYS = tuple(f"chroma_{i}" for i in range(12))
HPCP_KEYS = tuple(f"hpcp_{i}" for i in range(12))
TIV_KEYS = tuple(f"tiv_{i}" for i in range(12))
KEYS = CHROMA_KEYS + HPCP_KEYS + TIV_KEYS + ("tonic", "tonic_scale", "tonic_strength", "key", "key_confidence")
STEM_KEYS = ("harmonic_movement", "harmonic_variance")


def select_input(signal_or_signals, harmonic_stems) -> tuple[np.ndarray, int, str]:
    """Pick the analysed signal: summed harmonic stems if any are given, else the mix.

    Parameters
    ----------
    signal_or_signals : AudioSignal or Mapping[str, AudioSignal]
        The full mix, or stems by name ("bass", "other", "vocals", "drums",
        optionally "mix" for the full mix).
    harmonic_stems : sequence of str
        Stems to sum when present.

    Returns
    -------
    mono, sample_rate, description
    """
    if isinstance(signal_or_signals, AudioSignal):
        return signal_or_signals.mono(), signal_or_signals.sample_rate, "full mix"
    stems = dict(signal_or_signals)
    if any(name in stems for name in harmonic_stems):
        mono, rate, used = harmonic_mix(stems, harmonic_stems)
        return mono, rate, "stems " + "+".join(used) + " (summed mono)"
    for name in ("mix", "full_mix"):
        if name in stems:
            return stems[name].mono(), stems[name].sample_rate, "full mix"
    raise MirflowError(
        f"harmony needs the full mix or at least one of the stems {list(harmonic_stems)}; got {sorted(stems)}",
        "pass the full mix or the harmonic stems.",
    )


def compute_harmony(signal_or_signals, params: HarmonyParams = HarmonyParams()) -> FeatureResult:
    """Chroma, HPCP, TIV and key of one track (family ``harmony``).

    Parameters
    ----------
    signal_or_signals : AudioSignal or Mapping[str, AudioSignal]
        See :func:`select_input`.
    params : HarmonyParams, optional
        Input stems, gates, both HPCP computations and the key estimators.

    Returns
    -------
    FeatureResult
        Keys :data:`KEYS`; ``meta`` records the input used and every
        parameter of each method.
    """
    p = params
    mono, sample_rate, described = select_input(signal_or_signals, p.harmonic_stems)
    result = FeatureResult()
    result.meta.update({
        "input": described,
        "sample_rate": int(sample_rate),
        "pitch_class_order": "C=0 ... B=11",
        "chroma_method": {"library": "essentia HPCP", **as_dict(p.chroma),
                          "frame_normalisation": "unitMax", "summary": "mean over frames, then unitSum"},
        "hpcp_method": {"library": "essentia HPCP", **as_dict(p.hpcp), "orderBy": "magnitude",
                        "frame_normalisation": "unitMax", "summary": "mean over frames, then unitMax"},
        "tiv_method": {"weights": list(TIV_WEIGHTS), "input": "mean HPCP, L1-normalised",
                       "layout": "Re/Im of k=1..6 interleaved", "normalisation": "L2"},
        "tonic_method": {"library": "essentia Key", "profileType": p.key_profile, "pcpSize": 12,
                         "input": "mean HPCP rotated to A-based bin order"},
        "key_method": ({"library": "madmom CNNKeyRecognitionProcessor (bundled model)",
                        "input": "mono, resampled to 44100 Hz (soxr_hq)"} if p.madmom_key else "disabled"),
    })
    level = rms_dbfs(mono)
    result.meta["input_rms_dbfs"] = level if math.isfinite(level) else None
    duration = len(mono) / float(sample_rate)
    if duration < p.min_duration_s:
        result.mark_all_absent(KEYS, f"too short ({duration:.2f} s < {p.min_duration_s} s)")
        return result
    if not level > p.silence_rms_dbfs:
        reason = "silent" if described == "full mix" else "silent (harmonic stems are silent)"
        result.mark_all_absent(KEYS, reason)
        return result

    chroma = mean_hpcp(mono, sample_rate, p.chroma)
    hpcp = mean_hpcp(mono, sample_rate, p.hpcp)
    if np.sum(chroma) > 0:
        for key, value in zip(CHROMA_KEYS, sum_normalised(chroma)):
            result.set(key, float(value))
    else:
        result.mark_all_absent(CHROMA_KEYS, "no spectral peaks in 100-4000 Hz")
    if np.sum(hpcp) > 0:
        for key, value in zip(HPCP_KEYS, max_normalised(hpcp)):
            result.set(key, float(value))
        try:
            for key, value in zip(TIV_KEYS, tonal_interval_vector(hpcp)):
                result.set(key, float(value))
        except ValueError as err:
            result.mark_all_absent(TIV_KEYS, str(err))
        tonic, scale, strength = essentia_key(max_normalised(hpcp), p.key_profile)
        result.set("tonic", int(tonic))
        result.set("tonic_scale", scale)
        result.set("tonic_strength", float(strength))
        result.meta["tonic_name"] = f"{PITCH_CLASS_NAMES[tonic]} {scale}"
    else:
        result.mark_all_absent(
            HPCP_KEYS + TIV_KEYS + ("tonic", "tonic_scale", "tonic_strength"), "no spectral peaks in 40-5000 Hz"
        )
    if p.madmom_key:
        label, confidence = madmom_key(mono, sample_rate)
        result.set("key", label)
        result.set("key_confidence", confidence)
    else:
        result.mark_all_absent(("key", "key_confidence"), "disabled (params madmom_key = false)")
    return result


def compute_harmony_stems(signal: AudioSignal,
                          params: HarmonyStemsParams = HarmonyStemsParams()) -> FeatureResult:
    """Harmonic movement and variance of one stem (family ``harmony_stems``).

    Parameters
    ----------
    signal : AudioSignal
        One stem (bass, other or vocals); the caller suffixes the keys.
    params : HarmonyStemsParams, optional
        Hop, gates and the variance scale.

    Returns
    -------
    FeatureResult
        ``harmonic_movement`` (0-1) and ``harmonic_variance`` (0-1; the
        division by ``variance_scale`` is capped at 1 by definition, and
        ``meta["harmonic_variance_capped"]`` says whether the cap was hit).
        Both absent with reason "silent stem" when no frame reaches
        ``active_frame_dbfs``, "too short" below ``min_duration_s``.
    """
    p = params
    hop = int(p.hop_length)
    result = FeatureResult()
    result.meta.update({
        "chroma": f"librosa.feature.chroma_cqt(hop_length={hop}, n_chroma=12, librosa defaults otherwise), "
                  "each frame divided by its sum",
        "active_frame_dbfs": float(p.active_frame_dbfs),
        "variance_scale": float(p.variance_scale),
    })
    mono = signal.mono()
    if signal.is_digital_silence():
        result.mark_all_absent(STEM_KEYS, "silent stem")
        return result
    if signal.duration_s < p.min_duration_s:
        result.mark_all_absent(STEM_KEYS, f"too short ({signal.duration_s:.2f} s < {p.min_duration_s} s)")
        return result
    chroma = chroma_frames(mono, signal.sample_rate, hop)
    active = frame_rms_dbfs(mono, hop, chroma.shape[1]) >= p.active_frame_dbfs
    result.meta["frames"] = int(chroma.shape[1])
    result.meta["active_frames"] = int(np.count_nonzero(active))
    if not np.any(active):
        result.mark_all_absent(STEM_KEYS, "silent stem")
        return result
    try:
        result.set("harmonic_movement", harmonic_movement(chroma, active))
    except ValueError as err:
        result.mark_absent("harmonic_movement", str(err))
    try:
        raw = harmonic_variance_raw(chroma, active)
    except ValueError as err:
        result.mark_absent("harmonic_variance", str(err))
    else:
        scaled = raw / float(p.variance_scale)
        result.meta["harmonic_variance_raw"] = raw
        result.meta["harmonic_variance_capped"] = bool(scaled > 1.0)
        result.set("harmonic_variance", float(min(scaled, 1.0)))
    return result


FAMILIES = (
    # A context family (its job code is mirflow.families.harmony_family): it reads the stems when the track has them.
    Family("harmony", 1, "mix", "harmony", "mirflow.families:harmony_family", ("essentia", "madmom", "numpy"),
           "Chroma, HPCP, tonal interval vector, key (Essentia and madmom)", kind="context",
           needs=("prefer:stems",), params=HarmonyParams),
    Family("harmony_stems", 1, "stems", "harmony_stems", "mirflow.features.harmony:compute_harmony_stems",
           ("librosa", "numpy"), "Harmonic movement and variance of the bass, other and vocals stems",
           params=HarmonyStemsParams),
)
