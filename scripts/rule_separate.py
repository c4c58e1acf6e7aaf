"""Snakemake script of separate_stems: one call into the mirflow package."""
from mirflow.jobs import separate_job

separate_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
