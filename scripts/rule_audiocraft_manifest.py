"""Snakemake script of the audiocraft_manifest rule: one call into the mirflow package."""
from mirflow.jobs import audiocraft_manifest_job

audiocraft_manifest_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
