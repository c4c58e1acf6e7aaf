"""Snakemake script of verify_model_file: one call into the mirflow package."""
from mirflow.jobs import verify_model_job

verify_model_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
