"""The one audio loader every rule uses.

All families see identical samples: the file is decoded by the same decoder,
at its original sample rate and channel layout, with no resampling, no
normalisation and no dithering. Different MP3/AAC decoders disagree by tens of
milliseconds (encoder delay handling), so mixing decoders across families would
shift beat grids against features.

Decoders, in order:

* libsndfile through ``soundfile`` for WAV, FLAC, AIFF, Ogg Vorbis, Opus and
  MP3 (libsndfile >= 1.1 decodes MP3 with mpg123, gapless);
* Essentia's bundled FFmpeg (``essentia.standard.AudioLoader``) for M4A/AAC and
  anything libsndfile cannot open. No system FFmpeg is needed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputAudioError

#: Extensions treated as audio during track discovery (lower case, no dot).
AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg", "opus", "m4a", "aiff", "aif")
_SOUNDFILE_FIRST = {"wav", "flac", "mp3", "ogg", "opus", "aiff", "aif"}


@dataclass(frozen=True)
class AudioSignal:
    """Decoded audio.

    Attributes
    ----------
    samples : np.ndarray
        float32 array of shape (channels, frames), full scale = 1.0.
    sample_rate : int
        Samples per second per channel, as stored in the file.
    path : str
        The decoded file.
    decoder : str
        Which decoder produced the samples ("soundfile" or "essentia").
    """

    samples: np.ndarray
    sample_rate: int
    path: str = ""
    decoder: str = ""

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.frames / float(self.sample_rate)

    def mono(self) -> np.ndarray:
        """Mono downmix (mean of the channels), float32, shape (frames,)."""
        if self.channels == 1:
            return self.samples[0]
        return self.samples.mean(axis=0, dtype=np.float64).astype(np.float32)

    def is_digital_silence(self) -> bool:
        """True when every sample is exactly zero."""
        return not np.any(self.samples)


def _decode_soundfile(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(sr)


def _decode_essentia(path: str) -> tuple[np.ndarray, int]:
    import essentia

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    import essentia.standard as es

    audio, sr, channels, _md5, _bitrate, _codec = es.AudioLoader(filename=path, computeMD5=False)()
    data = np.asarray(audio, dtype=np.float32)  # (frames, 2): AudioLoader always returns stereo
    if channels == 1:
        data = data[:, :1]
    return np.ascontiguousarray(data.T), int(sr)


def load_audio(path: str | os.PathLike) -> AudioSignal:
    """Decode an audio file at its native sample rate and channel layout.

    Parameters
    ----------
    path : str or PathLike
        The audio file. It is only read, never modified.

    Returns
    -------
    AudioSignal
        float32 samples of shape (channels, frames).

    Raises
    ------
    InputAudioError
        If the file is missing, empty, not decodable, or decodes to zero frames.
        The message names the file, the reason and what to do.
    """
    path = str(path)
    p = Path(path)
    if not p.exists():
        raise InputAudioError(path, "the file does not exist", "check the input folder and run again.")
    if p.stat().st_size == 0:
        raise InputAudioError(path, "the file is empty (0 bytes)")
    ext = p.suffix.lower().lstrip(".")
    decoders = [("soundfile", _decode_soundfile), ("essentia", _decode_essentia)]
    if ext not in _SOUNDFILE_FIRST:
        decoders.reverse()
    errors = []
    for name, decode in decoders:
        try:
            samples, sr = decode(path)
        except ImportError as err:
            errors.append(f"{name}: not installed ({err})")
            continue
        except Exception as err:  # decoders raise many types; all mean "cannot decode"
            errors.append(f"{name}: {str(err).strip() or type(err).__name__}")
            continue
        if samples.shape[1] == 0:
            errors.append(f"{name}: decoded zero samples")
            continue
        if sr <= 0:
            errors.append(f"{name}: invalid sample rate {sr}")
            continue
        if not np.all(np.isfinite(samples)):
            raise InputAudioError(path, "decoded samples contain NaN or infinite values")
        return AudioSignal(samples=samples, sample_rate=sr, path=path, decoder=name)
    raise InputAudioError(path, "no decoder could read it (" + "; ".join(errors) + ")")
