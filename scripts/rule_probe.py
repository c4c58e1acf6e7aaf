"""Snakemake script of rule probe_audio: one call into the mirflow package."""
from mirflow.probe import probe_job

probe_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
