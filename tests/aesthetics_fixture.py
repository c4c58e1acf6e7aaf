"""Random-weight Audiobox Aesthetics checkpoints of the real architecture, in the package's checkpoint format."""
from __future__ import annotations

from pathlib import Path

#: Configuration stored in the checkpoint (AesMultiOutput's defaults: WavLM-base,
#: 13 layers mixed per axis, one linear layer per axis, normalised embeddings).
MODEL_CFG = {"proj_num_layer": 1, "proj_ln": False, "proj_act_fn": "gelu", "proj_dropout": 0.0, "nth_layer": 13,
             "use_weighted_layer_sum": True, "precision": "32", "normalize_embed": True, "output_dim": 1}
#: Per-axis de-normalisation statistics (realistic magnitudes for 1-10 ratings).
TARGET_TRANSFORM = {"CE": {"mean": 5.6, "std": 1.4}, "CU": {"mean": 5.9, "std": 1.6},
                    "PC": {"mean": 4.3, "std": 1.9}, "PQ": {"mean": 6.8, "std": 1.3}}


def write_random_aesthetics_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a randomly initialised ``AesMultiOutput`` (94.4 M parameters) as ``checkpoint.pt``.

    The file is what ``audiobox_aesthetics.infer.AesPredictor.setup_model``
    reads: a ``torch.save``d dict with ``state_dict`` (keys prefixed ``model.``,
    as a training wrapper saves them), ``model_cfg`` and ``target_transform``.
    The projection heads get a non-zero random bias and larger weights than the
    default init so the four outputs differ clearly from each other.
    """
    import torch
    from audiobox_aesthetics.model.aes import AesMultiOutput

    torch.manual_seed(seed)
    model = AesMultiOutput(**MODEL_CFG, target_transform=TARGET_TRANSFORM)
    with torch.no_grad():
        for layer in model.proj_layer.values():
            layer[-1].weight.normal_(0.0, 0.5)
            layer[-1].bias.normal_(0.0, 0.5)
        for weights in model.layer_weights.values():
            weights.normal_(0.0, 1.0)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "model_cfg": dict(MODEL_CFG), "target_transform": TARGET_TRANSFORM}, path)
    return path
