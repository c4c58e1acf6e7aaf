"""Snakemake script of fetch_model_file: one call into the mirflow package."""
from mirflow.jobs import fetch_model_job

fetch_model_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
