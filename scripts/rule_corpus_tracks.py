"""Snakemake script of the corpus_tracks rule: one call into the mirflow package."""
from mirflow.jobs import corpus_tracks_job

corpus_tracks_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
