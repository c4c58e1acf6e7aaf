# Config validation, track discovery and the helpers every rule uses (paths, inputs, params).
import os
import sys
from pathlib import Path

from snakemake.utils import validate

# The mirflow package lives in scripts/. Rule scripts find it because Snakemake puts a script's folder on
# sys.path; the workflow itself appends it here (an installed or PYTHONPATH mirflow keeps precedence).
SCRIPTS_DIR = str(Path(workflow.basedir).parent / "scripts")
sys.path.append(SCRIPTS_DIR)
# Jobs run in parallel, one core each: keep numerical libraries from each starting a thread per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mirflow.errors import MirflowError
from mirflow.registry import FAMILIES
from mirflow.summary import render_summary, startup_report
from mirflow.tracks import discover_tracks


validate(config, schema="../schemas/config.schema.yaml")

RESULTS = os.path.normpath(config["results_dir"])
CATALOGUE = os.path.relpath(os.path.join(SCRIPTS_DIR, "mirflow", "catalogue.yaml"))

try:
    TRACKS = {
        t.id: t
        for t in discover_tracks(config["input_dir"], exclude_dirs=(RESULTS, *config.get("exclude_dirs", [])))
    }
except MirflowError as err:
    raise WorkflowError(f"mirflow: {err}")


wildcard_constraints:
    track=".+",
    name="[^/]+",


def escape(path):
    """Literal path for use as a Snakemake pattern (braces in file names are not wildcards)."""
    return path.replace("{", "{{").replace("}", "}}")


def track_of(wildcards):
    try:
        return TRACKS[wildcards.track]
    except KeyError:
        raise WorkflowError(
            f"mirflow: no track '{wildcards.track}' under input_dir '{config['input_dir']}'."
        )


def mix_input(wildcards):
    """Named input: the track's full mix, read in place."""
    return {"audio": track_of(wildcards).audio}


def stem_inputs(wildcards):
    """Named inputs: the stems available for the track (provided beside full_mix)."""
    return dict(track_of(wildcards).stems)


def family_settings(name):
    """The config section of a family (shared by a family and its _stems twin)."""
    return config.get(FAMILIES[name].settings, {})


def family_version(name):
    return FAMILIES[name].version


def family_log(name):
    return f"{RESULTS}/{{track}}/logs/{name}.log"


def family_output(name):
    return f"{RESULTS}/{{track}}/features/{name}.json"


def family_plan(track):
    """Which families run for a track (family -> partial JSON) and which do not (family -> reason)."""
    planned, missing = {}, {}
    for name, fam in FAMILIES.items():
        if not config["families"].get(name, True):
            missing[name] = f"disabled in the config (families: {name}: false)"
        elif fam.needs_stems and not track.stems:
            missing[name] = "no stems: none were provided beside the track (full_mix + drums/bass/other/vocals)"
        else:
            planned[name] = escape(f"{RESULTS}/{track.id}/features/{name}.json")
    return planned, missing


def merge_inputs(wildcards):
    track = track_of(wildcards)
    if track.name != wildcards.name:
        raise WorkflowError(f"mirflow: the .INFO of track '{track.id}' is named '{track.name}.INFO'.")
    return family_plan(track)[0]


def missing_families(wildcards):
    return family_plan(track_of(wildcards))[1]


def all_info_files():
    return [escape(f"{RESULTS}/{t.id}/{t.name}.INFO") for t in TRACKS.values()]


def print_startup_report():
    print(startup_report(config["input_dir"], RESULTS, list(TRACKS.values()),
                         {t.id: family_plan(t)[1] for t in TRACKS.values()}), file=sys.stderr)


# Printed when the workflow is parsed, so it appears for runs, dry-runs and "Nothing to be done" alike.
print_startup_report()


def print_run_summary():
    print(render_summary(RESULTS, list(TRACKS.values())), file=sys.stderr)
