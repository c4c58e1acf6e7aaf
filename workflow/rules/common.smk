# Config validation, track discovery and the helpers every rule uses (paths, inputs, params).
import gc
import hashlib
import inspect
import json
import os
import re
import shlex
import sys
import time
from functools import lru_cache
from pathlib import Path

from snakemake.common import overwrite_function_params
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

# Snakemake's DAG holds about 100 long-lived objects per job (3 million at 10,000 tracks); Python's default
# collector thresholds (700 allocations) make it traverse them over and over while the DAG is built. Collecting
# less often (still collecting: cyclic garbage is freed) takes 10 % off `snakemake -n` at 2,000 tracks
# (docs/measured.md). Set at parse time, before the DAG exists.
gc.set_threshold(100_000, 50, 100)
# The mirflow package lives in scripts/. Rule scripts find it because Snakemake puts a script's folder on
# sys.path; the workflow itself appends it here (an installed or PYTHONPATH mirflow keeps precedence).
SCRIPTS_DIR = str(Path(workflow.basedir).parent / "scripts")
sys.path.append(SCRIPTS_DIR)
# Jobs run in parallel, one core each: keep numerical libraries from each starting a thread per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One numba cache for install-time warm-up and every job (jobs inherit the variable): see mirflow.jitcache.
from mirflow.jitcache import configure as configure_numba_cache

configure_numba_cache()

import yaml

from mirflow.audio import AUDIO_EXTENSIONS
from mirflow.batches import select_batch
from mirflow.configcheck import config_problem, merge as merge_config, type_overrides
from mirflow.errors import MirflowError
from mirflow.jobspec import SHARED_PARAMS_ENV, shared_params_value
from mirflow.jsonio import check_writable_folder
from mirflow.layout import (FINISH_LAYER, SEPARATION_LAYER, cluster_layer, forget_incomplete_records, isolated_group,
                            job_layout, output_name)
from mirflow.models import forget_stale_verifications, load_manifest, missing_files, verification_marker
from mirflow.names import (exempt_track_names_from_periodic_check, set_aside, snakemake_wildcard_in,
                           track_wildcard_values)
from mirflow.registry import FAMILIES, STEM_NAMES, STEP_VERSIONS
from mirflow.runlog import record_failures, record_snakemake_log
from mirflow.summary import render_summary, startup_report
from mirflow.track_index import INDEX_NAME, load_track_index, trust_requested


# Nested command-line overrides arrive with string scalars (Snakemake parses them with YAML's BaseLoader):
# type them as the config file would, merge them key by key, and report a bad key in one line.
# The typed families' sections are generated from their parameter classes (mirflow.params).
from mirflow.params import fill_defaults, with_family_sections
_SCHEMA = with_family_sections(
    yaml.safe_load((Path(workflow.basedir) / "schemas" / "config.schema.yaml").read_text()), FAMILIES.values())
config.update(merge_config(config, type_overrides(
    getattr(workflow.config_settings, "overwrite_config", None) or {}, _SCHEMA)))
if config_problem(config, _SCHEMA):
    raise WorkflowError(f"mirflow: {config_problem(config, _SCHEMA)}")
validate(config, schema="../schemas/config.schema.yaml")
config.update(fill_defaults(config, FAMILIES.values()))  # an omitted key or section gets its class default

RESULTS = os.path.normpath(config["results_dir"])
try:  # a full disk or a read-only results folder: one message now, not a failure in every job
    check_writable_folder(RESULTS)
except MirflowError as err:
    raise WorkflowError(f"mirflow: results_dir: {err}")
MODELS_DIR = os.path.normpath(config["models_dir"])
MANIFEST = load_manifest(
    config.get("models_manifest") or str(Path(workflow.basedir).parent / "models" / "manifest.yaml")
)
MODEL_FILES = {mf.path: (spec.name, mf) for spec in MANIFEST.values() for mf in spec.files}
if workflow.is_main_process:
    for _path in forget_stale_verifications(MANIFEST, MODELS_DIR):
        print(f"mirflow: model file {MODELS_DIR}/{_path} is gone; it is verified again before use "
              "(fetched again where it can be)", file=sys.stderr)
MODEL_FILE_PATTERN = "|".join(re.escape(p) for p in MODEL_FILES) or "(?!)"
SEPARATION = config["separation"]
STEM_EXT = "mp3" if SEPARATION["format"] == "mp3" else "flac"
# The merge's rerun trigger for catalogue edits: the content's hash as a param (one value, not one more input
# file per track; touching the file without changing it reruns nothing).
CATALOGUE_SHA256 = hashlib.sha256(Path(SCRIPTS_DIR, "mirflow", "catalogue.yaml").read_bytes()).hexdigest()

# Discovery goes through the track index in the results folder: only changed folders are listed again and
# only new or edited files have their headers read; a job Snakemake starts (cluster, group) trusts the index
# without touching the input folder (mirflow.track_index; MIRFLOW_TRUST_TRACK_INDEX=1 forces that).
try:
    TRACK_INDEX = load_track_index(
        config["input_dir"], os.path.join(RESULTS, INDEX_NAME),
        exclude_dirs=(RESULTS, MODELS_DIR, *config.get("exclude_dirs", [])),
        trust=trust_requested(workflow.is_main_process),
    )
    TRACKS = {t.id: t for t in TRACK_INDEX.tracks}
    # One batch of a split run (`--config batch=i/n`, set by `python -m mirflow.run`): a chunk of the sorted ids.
    if config.get("batch"):
        TRACKS = {i: TRACKS[i] for i in select_batch(TRACKS, config["batch"])}
except MirflowError as err:
    raise WorkflowError(f"mirflow: {err}")
for _folder, _key in ((RESULTS, "results_dir"), (config["input_dir"], "input_dir")):
    if snakemake_wildcard_in(_folder):
        raise WorkflowError(f"mirflow: {_key} '{_folder}' contains '{snakemake_wildcard_in(_folder)}', which "
                            "Snakemake reads as a wildcard. Fix: use a folder path without braces.")
# A track whose name the workflow cannot carry fails alone, in rule unusable_track (probe.smk); every other
# track runs. Corpus-level outputs live beside the track folders, so a track may not take their names.
UNUSABLE = set_aside(TRACKS, results_dir=RESULTS,
                     reserved={"stats", "logs", "audiocraft", "sat_index.json", "sat_config.json"})
if not TRACKS and not UNUSABLE:
    raise WorkflowError(f"mirflow: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under input_dir "
                        f"'{config['input_dir']}'. Fix: point input_dir at your music folder "
                        "(--config input_dir=/path/to/music, or make run INPUT=/path/to/music).")
# Legal names such as "Intro____________________" must not trip Snakemake's periodic-wildcard guard.
exempt_track_names_from_periodic_check(track_wildcard_values(TRACKS.values()))
# Warm workers (README, "Architecture: warm workers"): jobs hand their work to a long-lived mirflow
# worker per host and results folder. Its settings reach the jobs through the environment, not params,
# so switching workers on or off reruns nothing. `workers: false` runs every job in its own process.
_WORKERS = config.get("workers", True)
_WORKERS = {"enabled": _WORKERS} if isinstance(_WORKERS, bool) else dict(_WORKERS)
# Set here (not required from the user), also in each job's own Snakemake process on a cluster.
os.environ.update(MIRFLOW_WORKERS=json.dumps({
    "enabled": bool(_WORKERS.get("enabled", True)),
    "dir": os.path.abspath(os.path.join(RESULTS, ".mirflow")),
    "idle_exit_s": _WORKERS.get("idle_exit_s", 300),
    "timeout_s": _WORKERS.get("timeout_s", {}),
    "snakemake_pid": os.getpid(),
}))
# Jobs run the thin client with this Python (the environment's own `python` under --use-conda), without
# site-packages (-S: it needs only the standard library; it enables them itself to run a job in process).
_JOB_PYTHON = ("python" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
               else sys.executable)
JOB_SHELL = " ".join(shlex.quote(p).replace("{", "{{").replace("}", "}}")
                     for p in (_JOB_PYTHON, "-S", os.path.join(SCRIPTS_DIR, "rule_job.py"))) + \
    " {params.job:q} {log:q} {threads}"


def per_job(func):
    """``func`` (an input, params or group function Snakemake calls for every job) with its signature looked up
    once: Snakemake otherwise runs inspect.signature on it at every call, 10 calls per job, 5 % of a 10,000-track
    dry run. Snakemake's own hook for it (snakemake.common.overwrite_function_params) takes the parameters."""
    overwrite_function_params(func, inspect.signature(func).parameters)
    return func


def _named_pairs(files):
    """[(name or None, path)] of a Snakemake file list, in order."""
    names = {start: name for name, (start, end) in files._names.items() if end is None or end - start == 1}
    return [(names.get(i), str(path)) for i, path in enumerate(files)]


# Params every job of a rule shares (a family's settings, the crops' and exports' sections) travel once per run in
# the environment, not in every job's spec: 30,000 copies of the same 3-10 KB held by the DAG cost memory and
# time at corpus scale. The client merges them back (mirflow.jobspec.with_shared_params); a job Snakemake starts
# elsewhere (cluster, group) re-parses the workflow and sets the same variable.
_SHARED_PARAMS = {}


def job_spec(entry, rule, lane="cpu", shared=None, **params):
    """Param `job`: the JSON a rule's shell command hands to scripts/rule_job.py (mirflow.jobspec).

    ``params`` values may be functions of the wildcards; ``shared`` holds the params equal for every job of the
    rule (sent through the environment). ``carried`` (a function of the wildcards) names inputs the job reads
    but the rule does not declare, each kept fresh by a declared one (step_input_split); the job sees them as
    inputs. The spec holds only what the job's params, inputs and outputs already determine, so it adds no
    rerun trigger of its own.
    """
    if shared:
        _SHARED_PARAMS[rule] = shared
        os.environ[SHARED_PARAMS_ENV] = shared_params_value(_SHARED_PARAMS)

    carried = params.pop("carried", None)

    @per_job
    def spec(wildcards, input, output):
        return json.dumps({
            "entry": entry, "rule": rule, "lane": lane,
            "input": _named_pairs(input) + (list(carried(wildcards).items()) if carried else []),
            "output": _named_pairs(output),
            "params": {k: (v(wildcards) if callable(v) else v) for k, v in params.items()},
            "wildcards": dict(wildcards.items()), **({"shared": rule} if shared else {}),
        }, ensure_ascii=False)

    return spec


wildcard_constraints:
    # (?s): a newline is a legal character of a file name.
    track="(?s:.+)",
    name="[^/]+",
    parent="(?s:(?:.*/)?)",


def escape(path):
    """A literal path as a Snakemake pattern. Snakemake has no escape for braces; names with a `{word}` that
    it would read as a wildcard are set aside above (mirflow.names), so any other path is already literal."""
    return path


def unusable_tracks():
    """The failing job of every track set aside at parse time (rule unusable_track)."""
    return [f"{RESULTS}/logs/unusable/{key}.json" for key in UNUSABLE]


# The probe step's record, relative to a track's result folder.
PROBE_RECORD = "logs/probe.json"


def probe_path(track):
    """The probe record of a track, a plain input of every family job.

    Not ``ancient()``: Snakemake 9 then skips the rerun check of every job downstream of a probe that must run
    (it masks them, and drops a masked job whose only upstream inputs are ancient), so a replaced input file
    would be re-probed but none of its families rerun. The probe reruns only with its input files, which rerun
    the families anyway, or with its own version.
    """
    return f"{RESULTS}/{track.id}/{PROBE_RECORD}"


def probe_inputs(wildcards):
    """Named inputs of the probe: the full mix and the provided stems."""
    return probe_inputs_of(track_of(wildcards))


def probe_inputs_of(track):
    return {"audio": track.audio, **track.stems}


def track_of(wildcards):
    """The track a job is for: wildcard `track`, or `parent` + `name` in rules whose files carry the name."""
    track_id = wildcards.track if "track" in wildcards.keys() else wildcards.parent + wildcards.name
    try:
        return TRACKS[track_id]
    except KeyError:
        raise WorkflowError(f"mirflow: no track '{track_id}' under input_dir '{config['input_dir']}'.")


@lru_cache(maxsize=None)
def model_missing_reason(name):
    """None when the model's files are present (or will be fetched), else why the model is unavailable."""
    if name not in MANIFEST:
        return f"model '{name}' is not in the model manifest"
    missing = missing_files(MANIFEST[name], MODELS_DIR)
    if missing and not (config["models"]["auto_fetch"] or MANIFEST[name].auto_fetch):
        return f"model '{name}' is missing from the models folder (`make models` fetches it)"
    return None


def model_inputs(name):
    """Named inputs for a model: its files and their verification markers (verified before first use)."""
    inputs = {}
    for i, mf in enumerate(MANIFEST[name].files):
        inputs[f"model_file_{i}"] = f"{MODELS_DIR}/{mf.path}"
        inputs[f"model_verified_{i}"] = str(verification_marker(MODELS_DIR, mf))
    return inputs


def family_models(fam):
    """Models a family requires; Music Flamingo's depend on the configured quantisation."""
    if fam.name == "captions_flamingo":
        variant = config["captions_flamingo"]["model_variant"].lower()
        return (f"music_flamingo_{variant}", "music_flamingo_mmproj")
    return fam.models


def family_model_inputs(name):
    """Model files of a family: its required models and the optional ones that are present."""
    fam = FAMILIES[name]
    inputs = {}
    for model in list(family_models(fam)) + [m for m in fam.optional_models if not model_missing_reason(m)]:
        for key, path in model_inputs(model).items():
            inputs[f"{key}_{model}"] = path
    return inputs


def track_stems(track):
    stems, reason = _track_stems(track.id)
    return dict(stems), reason


@lru_cache(maxsize=None)
def _track_stems(track_id):
    """Stems of a track (stem -> path) and, when it has none, why.

    Provided stems are read in place; otherwise the separation rule's outputs are used when separation is
    enabled and its model is available. Every per-stem family gets its stems through this one function.
    """
    track = TRACKS[track_id]
    if track.stems and not SEPARATION["force"]:
        return dict(track.stems), None
    return _separated_stems(track.id)


def _separated_stems(track_id):
    """The separation rule's stems of a track (stem -> path), or none and why."""
    if not SEPARATION["enabled"]:
        return {}, "no stems: none provided beside the track and separation is disabled (separation.enabled)"
    reason = model_missing_reason(SEPARATION["model"])
    if reason:
        return {}, f"no stems: none provided beside the track and {reason}"
    return {s: escape(f"{RESULTS}/{track_id}/stems/{s}.{STEM_EXT}") for s in STEM_NAMES}, None


def beats_input(track):
    """The track's beat grid, for families that use it, when the rhythm family is enabled."""
    if "rhythm" in FAMILIES and config["families"].get("rhythm", True):
        return {"beats": escape(f"{RESULTS}/{track.id}/{track.name}.BEATS_GRID")}
    return {}


def family_inputs(track, name):
    """Named inputs of one family for one track, derived from its `needs` (mirflow.registry.Family)."""
    return dict(_family_inputs(track.id, name))


@lru_cache(maxsize=None)
def _family_inputs(track_id, name):
    # Cached per parse: a step's input function and its job spec both ask.
    track, fam = TRACKS[track_id], FAMILIES[name]
    stems = track_stems(track)[0]
    needed = fam.needed_stems
    preferred = [n.split(":", 2)[2] for n in fam.needs if n.startswith("prefer:stem:")]
    inputs = {}
    if preferred and all(s in stems for s in preferred):
        inputs.update({s: stems[s] for s in preferred})
    elif fam.scope == "mix" and not needed and ("features" not in fam.needs or "mix" in fam.needs):
        inputs["audio"] = track.audio  # a mix family reads the mix unless it reads only results or one stem
    if fam.scope == "stems" or {"stems", "prefer:stems"} & set(fam.needs):
        inputs.update(stems)
    inputs.update({s: stems[s] for s in needed})
    if "beats" in fam.needs:
        inputs.update(beats_input(track))
    if "features" in fam.needs:
        planned = family_plan(track)[0]
        inputs.update({f"features_{other}": path for other, path in planned.items()
                       if "features" not in FAMILIES[other].needs})
        if config.get(fam.settings, {}).get("revise_flamingo") and "captions_flamingo" in planned:
            inputs["features_captions_flamingo"] = planned["captions_flamingo"]
    inputs.update(family_model_inputs(name))
    return tuple(inputs.items())


@per_job
def separation_inputs(wildcards):
    track = track_of(wildcards)
    return {"audio": track.audio, **model_inputs(SEPARATION["model"])}


def wanted_model_markers():
    """Verification markers of every model an enabled family or separation would use."""
    names = {SEPARATION["model"]} if SEPARATION["enabled"] else set()
    for fam in FAMILIES.values():
        if config["families"].get(fam.name, True):
            names.update(family_models(fam))
            names.update(fam.optional_models)
    return [str(verification_marker(MODELS_DIR, mf)) for n in sorted(names) if n in MANIFEST
            for mf in MANIFEST[n].files]


def family_settings(name):
    """The config section of a family (shared by a family and its _stems twin)."""
    return config.get(FAMILIES[name].settings, {})


def family_plan(track):
    """Which families run for a track (family -> partial JSON) and which do not (family -> reason)."""
    planned, missing = _family_plan(track.id)
    return dict(planned), dict(missing)


@lru_cache(maxsize=None)
def _family_plan(track_id):
    # Cached per parse: input functions of several rules ask for the same track's plan.
    track = TRACKS[track_id]
    names, missing = _plan_by_stems(*_stem_signature(track_id))
    return {name: escape(f"{RESULTS}/{track.id}/features/{name}.json") for name in names}, missing


def _stem_signature(track_id):
    """What a track's plan depends on: which stems it has, or why it has none."""
    track = TRACKS[track_id]
    if track.stems and not SEPARATION["force"]:
        return tuple(sorted(track.stems)), None
    return _separated_signature()


@lru_cache(maxsize=None)
def _separated_signature():
    # Tracks without provided stems (or with separation.force) all get the same stems, or none for one reason.
    stems, reason = _separated_stems("")
    return tuple(sorted(stems)), reason


@lru_cache(maxsize=None)
def _plan_by_stems(stem_names, no_stems_reason):
    """Families that run (names) and those that do not (family -> reason) for tracks with these stems.

    The same for every track with the same stems, so it is worked out once per kind of track, not per track:
    the start-up report over 100,000 tracks asks for every track's plan at each parse.
    """
    planned, missing = [], {}
    for name, fam in FAMILIES.items():
        if not config["families"].get(name, True):
            missing[name] = f"disabled in the config (families: {name}: false)"
        elif fam.needs_stems and no_stems_reason:
            missing[name] = no_stems_reason
        elif any(s not in stem_names for s in fam.needed_stems):
            missing[name] = f"needs the {' and '.join(fam.needed_stems)} stem, which the track does not have"
        elif any(model_missing_reason(m) for m in family_models(fam)):
            missing[name] = next(model_missing_reason(m) for m in family_models(fam) if model_missing_reason(m))
        elif fam.any_of_models and all(model_missing_reason(m) for m in fam.any_of_models):
            missing[name] = f"none of the models {', '.join(fam.any_of_models)} is present (`make models` fetches them)"
        else:
            planned.append(name)
    return tuple(planned), missing


# The job layout (mirflow.layout): the families of a track that always run together share one job, written
# below as one rule per step (rules/tracks.smk). Which families are planned at all is the same for every track;
# whether a track has stems is decided per track by the steps' inputs.
LAYOUT = job_layout(FAMILIES, _plan_by_stems(STEM_NAMES, None)[0])


PROBE_STEP = next(step for step in LAYOUT if step.probe)


# On a cluster the steps of many tracks share a group job (one submission; workflow/profiles/slurm). Snakemake
# fails a whole group job when one of its jobs fails, so a track that failed in the last run (the run record)
# gets groups of its own: its failure stays its own, and the other tracks of its groups finish (docs/cluster.md).
@lru_cache(maxsize=None)
def isolated_tracks():
    """Tracks with a failure in the run record (read once per parse, when the first job asks)."""
    return frozenset(f.get("track") for f in record_failures(RESULTS))


def cluster_group(layer):
    """`group:` of a rule: its layer; a group of its own for a track that failed last time; none locally."""
    @per_job
    def group(wildcards):
        if not workflow.non_local_exec:
            return None
        track_id = wildcards.track if "track" in wildcards.keys() else wildcards.parent + wildcards.name
        return isolated_group(layer, track_id) if track_id in isolated_tracks() else layer

    return group


def track_dir_pattern():
    """A track's result folder as a pattern: its id spelled {parent}{name}, as the files named after it need."""
    return f"{RESULTS}/{{parent}}{{name}}"


def step_outputs(step):
    """Named outputs of a step: each family's partial JSON and extra files as update() outputs (so a step that
    reruns for one family keeps the others, mirflow.runner.reusable), the probe record, the .INFO."""
    base = track_dir_pattern()
    outputs = {"probe": f"{base}/{PROBE_RECORD}"} if step.probe else {}
    for name in step.families:
        outputs[output_name(name)] = update(f"{base}/features/{name}.json")
        for role, relative in FAMILIES[name].outputs:
            path = f"{base}/{relative.rstrip('/')}"
            outputs[output_name(name, role)] = update(directory(path) if relative.endswith("/") else path)
    if step.merge:
        outputs["info"] = f"{base}/{{name}}.INFO"
    return outputs


# The probe step's outputs but its record, relative to a track's folder, "{name}" standing for the track's name.
PROBE_STEP_PRODUCTS = tuple(path[len(track_dir_pattern()) + 1:] for role, path in step_outputs(PROBE_STEP).items()
                            if role != "probe")


def step_inputs(step):
    """Input function of a step: the inputs it declares to Snakemake (step_input_split)."""
    @per_job
    def inputs(wildcards):
        return step_input_split(step, track_of(wildcards))[0]

    return inputs


def step_input_split(step, track):
    """(declared, carried) named inputs of a step for a track.

    Everything the step reads: what its families need (family_inputs), the probe's files or its record, and for
    the merge every other partial JSON of the track. Declared inputs are what Snakemake orders, reruns and
    rebuilds jobs by; each declared path costs the DAG about 1.3 KB per job, so a file kept fresh by a declared
    one is carried in the job spec instead (job_spec's ``carried``):
    - a model file: its verification marker, declared, is written after the file is fetched and again whenever
      it changes (a marker whose file is gone is removed at start-up, mirflow.models.forget_stale_verifications);
    - an output of the probe step (track_features: its partial JSONs and the beat grids): its record
      ``logs/probe.json``, declared, stands for all of them. Snakemake writes it only with the step's other
      outputs (it removes a failed job's outputs), so it is newer than a rerun step's families, and a record
      whose step misses an output is removed at start-up (forget_incomplete_probe_records), so a deleted
      partial is computed again before anything reads it.
    """
    named = probe_inputs_of(track) if step.probe else {"probe": probe_path(track)}
    for name in step.families:
        named.update(family_inputs(track, name))
    if step.merge:
        named.update({f"features_{fam}": path for fam, path in family_plan(track)[0].items()
                      if fam not in step.families})
    carried = {role: path for role, path in named.items() if role.startswith("model_file_")}
    if not step.probe:
        carried.update(probe_step_products(track, named))
    declared = {role: path for role, path in named.items() if role not in carried}
    return declared, carried


def probe_step_products(track, named):
    """The entries of ``named`` (role -> path) that the probe step writes for ``track``, but its record."""
    base = f"{RESULTS}/{track.id}/"
    products = {relative.replace("{name}", track.name) for relative in PROBE_STEP_PRODUCTS}
    return {role: path for role, path in named.items() if path.startswith(base) and path[len(base):] in products}


def forget_incomplete_probe_records():
    """Remove the probe record of every track whose probe step misses one of its outputs (a partial deleted by
    hand, a folder copied in part): the record is a target of rule all, so the step runs again, and then the
    merge and the crops that read its outputs.
    Main process only; a track costs one look-up, and one per output where a record exists."""
    removed = forget_incomplete_records(
        (f"{RESULTS}/{t.id}" for t in TRACKS.values()), record=PROBE_RECORD, products=PROBE_STEP_PRODUCTS,
        names=(t.name for t in TRACKS.values()))
    if removed:
        print(f"mirflow: {len(removed)} track(s) miss outputs of step {PROBE_STEP.rule} (e.g. {removed[0]}); "
              "the step runs again for them", file=sys.stderr)


if workflow.is_main_process:
    forget_incomplete_probe_records()


def step_params(step):
    """Param `job` of a step (mirflow.runner.run_step_job): its families, their settings and input names."""
    def family_roles(wildcards):
        track = track_of(wildcards)
        return {name: list(family_inputs(track, name)) for name in step.families}

    def probe_roles(wildcards):
        return list(probe_inputs(wildcards)) if step.probe else []

    shared = {"settings": {name: family_settings(name) for name in step.families}}
    if step.merge:
        shared.update(resolved=config["resolved"], missing_reasons={})

    def merge(wildcards):
        # The merge reads the partials from its inputs and outputs (features_<family>); why the other families
        # are absent is the same for every track with the same stems, so the spec names that set of reasons
        # and the reasons themselves travel once, with the shared params.
        if not step.merge:
            return None
        missing = family_plan(track_of(wildcards))[1]
        key = hashlib.sha256(json.dumps(missing, sort_keys=True).encode()).hexdigest()[:12]
        if key not in shared["missing_reasons"]:
            shared["missing_reasons"][key] = missing
            os.environ[SHARED_PARAMS_ENV] = shared_params_value(_SHARED_PARAMS)
        return {"missing": key}

    def carried(wildcards):
        return step_input_split(step, track_of(wildcards))[1]

    return job_spec("mirflow.runner:run_step_job", step.rule, step.lane, shared=shared, step=step.rule,
                    families=list(step.families), inputs=family_roles, probe=probe_roles, merge=merge,
                    carried=carried)


def step_versions(step):
    """Versions that rerun a step when bumped: its families', the probe's and the merge's."""
    versions = {name: FAMILIES[name].version for name in step.families}
    if step.probe:
        versions["probe_audio"] = STEP_VERSIONS["probe_audio"]
    if step.merge:
        versions["merge_info"] = STEP_VERSIONS["merge_info"]
    return versions


def all_info_files():
    return [escape(f"{RESULTS}/{t.id}/{t.name}.INFO") for t in TRACKS.values()]


def all_probe_records():
    return [probe_path(t) for t in TRACKS.values()]


def all_crop_dirs():
    if not config["crops"]["enabled"]:
        return []
    return [escape(f"{RESULTS}/{t.id}/crops") for t in TRACKS.values()]


@per_job
def crop_inputs(wildcards):
    """Full mix, stems, the track's .INFO (for the families copied into crops) and, when the rhythm family runs,
    the probe step's record standing for the beat grids (carried: crop_carried)."""
    track = track_of(wildcards)
    record = {"probe": probe_path(track)} if crop_carried(wildcards) else {}
    return {"audio": track.audio, **track_stems(track)[0], **record,
            "info": escape(f"{RESULTS}/{track.id}/{track.name}.INFO")}


def crop_carried(wildcards):
    """The beat grids the crops read (their declared stand-in: the probe step's record, step_input_split)."""
    if not config["families"].get("rhythm", True):
        return {}
    track = track_of(wildcards)
    return {k: escape(f"{RESULTS}/{track.id}/{track.name}.{ext}")
            for k, ext in (("beats", "BEATS_GRID"), ("downbeats", "DOWNBEATS"))}


def crop_family_settings():
    """Settings of every enabled family, keyed by family (crops compute some of them on each crop)."""
    return {name: config.get(fam.settings, {}) for name, fam in FAMILIES.items()
            if config["families"].get(name, True)}


def model_table():
    """Rows (model, missing files, needed by) for every model an enabled step would use."""
    needed = {}
    if SEPARATION["enabled"] and any(not t.stems or SEPARATION["force"] for t in TRACKS.values()):
        needed.setdefault(SEPARATION["model"], []).append("stem separation")
    for fam in FAMILIES.values():
        if config["families"].get(fam.name, True):
            for m in family_models(fam):
                needed.setdefault(m, []).append(fam.name)
            for m in fam.optional_models:
                needed.setdefault(m, []).append(f"{fam.name} (optional)")
    return [(name, [mf.path for mf in missing_files(MANIFEST[name], MODELS_DIR)] if name in MANIFEST else ["?"],
             users, name in MANIFEST and any(mf.unpinned for mf in MANIFEST[name].files),
             name in MANIFEST and MANIFEST[name].auto_fetch)
            for name, users in sorted(needed.items())]


def print_startup_report():
    print(startup_report(config["input_dir"], RESULTS, list(TRACKS.values()),
                         {t.id: _plan_by_stems(*_stem_signature(t.id))[1] for t in TRACKS.values()},
                         model_table(), MODELS_DIR,
                         config["models"]["auto_fetch"]), file=sys.stderr)
    if UNUSABLE:
        print(f"mirflow: {len(UNUSABLE)} input(s) set aside, each failing alone in rule unusable_track "
              "(the other tracks run):", file=sys.stderr)
        for track, reason in UNUSABLE.values():
            print(f"    {track.audio!r}: {reason}", file=sys.stderr)


# Printed when the workflow is parsed, so it appears for runs, dry-runs and "Nothing to be done" alike (not in
# the jobs Snakemake starts: they re-parse the workflow for one job).
if workflow.is_main_process:
    print(f"mirflow: {TRACK_INDEX.stats.describe()}; {TRACK_INDEX.audio_summary()}", file=sys.stderr)
    print_startup_report()


RUN_STARTED = time.time()


def finish_run(log, exit_code):
    """A direct `snakemake` run: record its failed jobs from Snakemake's own log and print the summary.

    Under the driver (`python -m mirflow.run`, what `make run` calls) the driver does both from the output it
    reads, so the summary is printed once.
    """
    if os.environ.get("MIRFLOW_DRIVER"):
        return
    entry = record_snakemake_log(RESULTS, log, section=config.get("batch") or "all", started=RUN_STARTED,
                                 exit_code=exit_code)
    print(render_summary(RESULTS, list(TRACKS.values()), run=entry), file=sys.stderr)
