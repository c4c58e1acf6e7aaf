"""Peak memory and wall time per rule of a cluster run, from SLURM's accounting (the figures behind the
resources in workflow/profiles/slurm/config.yaml). Every job inside a group submission is its own `srun` step
whose command names its rule (`--target-jobs <rule>:...`), so `sacct` gives MaxRSS and Elapsed per rule.

    python benchmarks/slurm_steps.py [sacct options, e.g. -S 2026-12-01]
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict


def seconds(elapsed: str) -> int:
    days, _, hms = elapsed.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def main() -> None:
    out = subprocess.run(["sacct", "-P", "-n", "-o", "JobID,Elapsed,MaxRSS,SubmitLine%4000", *sys.argv[1:]],
                         capture_output=True, text=True, check=True).stdout
    per_rule: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for line in out.splitlines():
        jobid, elapsed, rss, submit = line.split("|", 3)
        rule = re.search(r"--target-jobs '?([\w]+):", submit)
        if "." in jobid and rule and rss:
            per_rule[rule[1]].append((seconds(elapsed), int(rss.rstrip("K")) / 1024))
    print(f"{'rule':22s} {'steps':>5s} {'max wall s':>10s} {'max RSS MB':>10s}")
    for rule, values in sorted(per_rule.items()):
        print(f"{rule:22s} {len(values):5d} {max(v[0] for v in values):10d} {max(v[1] for v in values):10.0f}")


if __name__ == "__main__":
    main()
