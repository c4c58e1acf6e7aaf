"""Shell command of every family, separation, merge and crop rule: one call into the thin client.

Usage (written by the workflow): rule_job.py '<job spec JSON>' <log> <threads>. Imports only the
standard library; the work runs in a warm mirflow worker (or in this process with `workers: false`).
"""
import sys

# This folder goes last, as Snakemake's `script:` put it: a mirflow on PYTHONPATH keeps precedence.
sys.path.append(sys.path.pop(0))

from mirflow.client import main

sys.exit(main())
