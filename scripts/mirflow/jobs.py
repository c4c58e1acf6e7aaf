"""Entry points of the rule scripts that are not feature families (models, separation, transcription)."""
from __future__ import annotations

from .jsonio import write_text_atomic
from .runner import job_logging


def fetch_model_job(smk) -> None:
    """Fetch one model file from its official source and verify it."""
    from .models import fetch_model_file

    spec = smk.params.spec
    with job_logging(smk.log[0], f"models/{spec.path}", "fetch_model") as logger:
        digest = fetch_model_file(spec, smk.output[0])
        logger.info("fetched %s sha256=%s", smk.output[0], digest)


def verify_model_job(smk) -> None:
    """Verify one model file (fetched or placed by hand) and record its sha256."""
    from .models import verify_model_file

    spec = smk.params.spec
    with job_logging(smk.log[0], f"models/{spec.path}", "verify_model") as logger:
        digest = verify_model_file(smk.input[0], spec)
        write_text_atomic(smk.output[0], digest + "\n")
        logger.info("verified %s sha256=%s", smk.input[0], digest)


def separate_job(smk) -> None:
    """Separate one track into drums, bass, other and vocals and record how in ``stems/separation.json``."""
    import time

    from .separation import apply_gpu_env_defaults

    settings = dict(smk.params.settings)
    track = smk.wildcards.track
    with job_logging(smk.log[0], track, "separate_stems") as logger:
        started = time.perf_counter()
        env_applied = apply_gpu_env_defaults()  # before torch is imported
        import torch

        from .audio import load_audio
        from .jsonio import write_json_atomic
        from .modelcache import cached_model
        from .registry import STEM_NAMES
        from .runner import audio_facts, file_fingerprint, library_versions
        from .separation import load_separator, pick_device, separate, write_stem

        torch.set_num_threads(max(1, int(smk.threads)))
        device = pick_device(settings["device"])
        checkpoints = [str(p) for k, p in smk.input.items() if k.startswith("model_file_")]
        signal = load_audio(smk.input.audio)
        loaded = time.perf_counter()
        separator = cached_model("demucs", checkpoints,
                                 lambda: load_separator(settings["model"], checkpoints, device),
                                 settings["model"], device)
        model_load_s = time.perf_counter() - loaded
        stems, sample_rate, meta = separate(separator, signal, settings, device)
        written = {name: write_stem(smk.output[name], stems[name], sample_rate, settings) for name in STEM_NAMES}
        for name, facts in written.items():
            if facts["clipped_samples"]:
                logger.warning("stem %s: %d samples beyond full scale were clipped by the %s encoder",
                               name, facts["clipped_samples"], settings["format"])
        write_json_atomic(smk.output.meta, {
            "model": settings["model"], "params": settings, "gpu_env_defaults_applied": env_applied,
            "checkpoints": {k: file_fingerprint(p) for k, p in smk.input.items() if k.startswith("model_file_")},
            "input": {**file_fingerprint(smk.input.audio), **audio_facts(signal)},
            "libraries": library_versions(["demucs", "torch"]), "stems": written, **meta,
            "model_load_s": round(model_load_s, 3), "wall_time_s": round(time.perf_counter() - started, 3),
        })
        logger.info("separated %s on %s in %.1f s (model load %.1f s)", track, device,
                    meta["separation_s"], model_load_s)


def corpus_tracks_job(smk) -> None:
    """List the corpus's tracks (their .INFO and crop folder, one per line): the corpus rules' one input."""
    infos, crops = list(smk.input.infos), list(smk.input.crops)
    with job_logging(smk.log[0], "(corpus)", "corpus_tracks") as logger:
        write_text_atomic(smk.output[0], corpus_tracks_table(infos, crops))
        logger.info("listed %d tracks in %s", len(infos), smk.output[0])


def corpus_tracks_table(infos: list[str], crops: list[str]) -> str:
    """Tab-separated ``info`` and ``crops`` (empty when crops are disabled), a header line, a track per line."""
    if crops and len(crops) != len(infos):
        raise ValueError(f"{len(infos)} .INFO files but {len(crops)} crop folders: one per track expected")
    rows = ["info\tcrops"] + [f"{info}\t{crops[i] if crops else ''}" for i, info in enumerate(infos)]
    return "\n".join(rows) + "\n"


def corpus_report_job(smk) -> None:
    """Statistics tables, summaries and the HTML report over every track and crop .INFO."""
    from pathlib import Path

    from .stats import write_outputs

    params = {**dict(smk.params.stats), **dict(smk.params.report)}
    with job_logging(smk.log[0], "(corpus)", "corpus_report") as logger:
        out_dir = Path(smk.output.tracks_csv).parent  # <results>/stats
        for kind in ("tracks", "crops"):
            written = write_outputs(str(out_dir.parent), str(out_dir), kind=kind, params=params, report=True)
            logger.info("%s: %s", kind, written)


def audiocraft_manifest_job(smk) -> None:
    """AudioCraft's manifest of every crop mix with a MusicInfo sidecar (``<results>/audiocraft/data.jsonl.gz``)."""
    from pathlib import Path

    from .exports.audiocraft import manifest_entries, write_manifest

    with job_logging(smk.log[0], "(corpus)", "audiocraft_manifest") as logger:
        rows = manifest_entries(Path(smk.output[0]).parent.parent)
        write_manifest(smk.output[0], rows)
        logger.info("AudioCraft manifest: %d crop(s), %.1f s of audio", len(rows), sum(r["duration"] for r in rows))


def training_exports_job(smk) -> None:
    """``sat_index.json`` + ``sat_config.json`` for Stable Audio Tools (every track's audio -> its .INFO)."""
    import json
    import os

    from .exports.stable_audio import write_sat_index

    with job_logging(smk.log[0], "(corpus)", "training_exports") as logger:
        pairs = {os.path.abspath(audio): os.path.abspath(info) for audio, info in dict(smk.params.pairs).items()}
        write_sat_index(smk.output.index, pairs, smk.params.input_dir)
        # Relative to sat_config.json: both files move with the results folder.
        sat_config = {"index": os.path.basename(smk.output.index), **dict(smk.params.prompt)}
        write_text_atomic(smk.output.config, json.dumps(sat_config, indent=2, ensure_ascii=False) + "\n")
        logger.info("indexed %d tracks for Stable Audio Tools", len(pairs))
