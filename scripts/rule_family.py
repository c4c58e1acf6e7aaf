"""Snakemake script of every signal-family rule: one call into the mirflow package."""
from mirflow.runner import run_family_job

run_family_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
