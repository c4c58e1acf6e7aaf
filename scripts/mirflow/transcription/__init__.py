"""Note-level transcription: drums (ADTOF Frame_RNN) and bass (Spotify Basic Pitch).

Modules
-------
adtof
    ADTOF Frame_RNN in PyTorch and its log-filtered spectrogram input.
drums
    Peak picking of the drum activations, ``drums_adtof.mid`` and the ``drums`` features.
bass
    Bass transcription with Basic Pitch's ONNX model and ``bass_basicpitch.mid``.

torch and onnxruntime are imported inside these modules only, never here, so
importing ``mirflow.transcription`` stays cheap.
"""
