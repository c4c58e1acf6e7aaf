"""Training-data exports built from ``.INFO`` files.

* :mod:`mirflow.exports.prompt`: prompt templates and conditioning values (shared).
* :mod:`mirflow.exports.stable_audio`: a Stable Audio Tools ``custom_metadata_module``.
* :mod:`mirflow.exports.audiocraft`: AudioCraft ``MusicInfo`` sidecar JSONs.

Every string taken from an .INFO into a prompt or a text field is normalised with
:func:`mirflow.textnorm.normalize_text` (the .INFO itself keeps the raw tag text).
This package must stay light (standard library plus mirflow.textnorm, .provenance and .labels): Stable Audio
Tools imports it inside its data-loader workers.
"""
