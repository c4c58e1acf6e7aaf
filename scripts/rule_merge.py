"""Snakemake script of the merge rule: one call into the mirflow package."""
from mirflow.merge import run_merge_job

run_merge_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
