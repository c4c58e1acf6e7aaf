"""Snakemake script of the crops rule: one call into the mirflow package."""
from mirflow.crop_job import crops_job

crops_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
