"""Helpers of the workflow benchmarks (job_overhead.py, end_to_end.py): a checkout of the baseline
commit, corpora, timed Snakemake runs. Not a benchmark itself."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The main branch before warm workers: every job a fresh Python process (`script:` rules).
BASELINE_COMMIT = "3b244c6"


def baseline_checkout(commit: str = BASELINE_COMMIT, where: Path | None = None) -> Path:
    """A detached ``git worktree`` of ``commit`` (created once, reused), so the baseline runs its own code."""
    where = where or Path(os.environ.get("TMPDIR", "/tmp")) / f"mirflow-baseline-{commit}"
    if not (where / "workflow" / "Snakefile").exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), commit], check=True,
                       capture_output=True)
    return where


def workdir(root: Path, repo: Path, music: Path, config_overrides: dict) -> Path:
    """A fresh working folder: the checkout's config plus overrides (extra.yaml) and a link to the music."""
    import yaml

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(repo / "config", root / "config")
    (root / "extra.yaml").write_text(yaml.safe_dump(config_overrides))
    (root / "music").symlink_to(music)
    return root


def snakemake(repo: Path, wd: Path, *args: str, cores: int = 1) -> float:
    """Run the checkout's workflow in ``wd`` with its own package; wall seconds. Raises on failure."""
    env = {**os.environ, "PYTHONPATH": str(repo / "scripts")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "workflow" / "Snakefile"), "--cores", str(cores),
           *args, "--configfile", "config/config.yaml", "extra.yaml",
           "--config", "input_dir=music", "results_dir=results"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {wd}:\n{proc.stderr[-4000:]}")
    return wall


def recorded_compute_s(results: Path, family: str | None = None) -> tuple[float, int]:
    """Sum of ``_meta.wall_time_s`` over the partial JSONs (of one family, or all) and their count."""
    total, count = 0.0, 0
    pattern = f"features/{family}.json" if family else "features/*.json"
    for path in results.rglob(pattern):
        total += json.loads(path.read_text(encoding="utf-8"))["_meta"]["wall_time_s"]
        count += 1
    return total, count


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.1f} at start"
