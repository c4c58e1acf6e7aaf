"""Random-weight Demucs checkpoints of the real architecture, saved in Demucs' own checkpoint format."""
from __future__ import annotations

import hashlib
from pathlib import Path

SOURCES = ["drums", "bass", "other", "vocals"]


def write_random_htdemucs(folder: Path, signature: str = "955717e8", seed: int = 0) -> Path:
    """Save a randomly initialised HTDemucs (the htdemucs architecture, 26.9 M parameters) as
    ``<signature>-<sha256 prefix>.th`` in the package format of ``demucs.states.serialize_model``
    (class, init args, half-precision state, training args), as Demucs' trainer writes it. The dict is
    built here because serialize_model imports omegaconf only to convert the training args."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state

    torch.manual_seed(seed)
    model = HTDemucs(sources=SOURCES)
    args, kwargs = model._init_args_kwargs
    package = {"klass": model.__class__, "args": args, "kwargs": kwargs,
               "state": get_state(model, None, half=True), "training_args": {}}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.th"
    torch.save(package, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    final = folder / f"{signature}-{digest[:8]}.th"
    tmp.rename(final)
    return final


def manifest_for(checkpoint: Path, models_dir: Path) -> str:
    """A model manifest whose htdemucs entry is the random checkpoint."""
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    rel = checkpoint.relative_to(models_dir).as_posix()
    return (
        "models:\n  htdemucs:\n    description: random-weight HTDemucs for tests\n    licence: MIT\n"
        f"    families: [separation]\n    files:\n      - path: {rel}\n        urls: [{checkpoint.as_uri()}]\n"
        f"        sha256: {digest}\n"
    )
