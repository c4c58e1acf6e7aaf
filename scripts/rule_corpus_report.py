"""Snakemake script of the corpus_report rule: one call into the mirflow package."""
from mirflow.jobs import corpus_report_job

corpus_report_job(snakemake)  # noqa: F821 - `snakemake` is injected by Snakemake
