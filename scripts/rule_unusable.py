"""Snakemake script of rule unusable_track: one call into the mirflow package."""
from mirflow.probe import unusable_job

unusable_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
