"""Snakemake script of the training_exports rule: one call into the mirflow package."""
from mirflow.jobs import training_exports_job

training_exports_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
