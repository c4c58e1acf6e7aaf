"""One job as data: what a rule hands to its entry point, in process or in a warm worker.

A rule's shell command passes a JSON *job spec* (entry point, named inputs, outputs, params,
wildcards; see ``job_spec`` in workflow/rules/common.smk) plus its log and thread count to
``scripts/rule_job.py``. :func:`execute` rebuilds the object Snakemake's ``script:`` directive
used to inject (``snakemake.input.audio``, ``snakemake.output[0]``, ``snakemake.params.settings``...)
and calls the entry point with it, so every job function (``runner.run_family_job``,
``runner.run_step_job``, ``jobs.separate_job``, ``crop_job.crops_job``) is the same function in
both execution paths. Stdlib only: the thin client imports this module.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

#: Marker a failed job leaves in its log; `python -m mirflow.summary` lists them.
FAILURE_MARKER = "MIRFLOW-FAILED"
#: Environment variable with the params every job of a rule shares (JSON: rule -> params), set by the workflow
#: when it is parsed; a spec with ``"shared": <rule>`` takes them from there (:func:`with_shared_params`).
SHARED_PARAMS_ENV = "MIRFLOW_JOB_PARAMS"
#: Linux refuses a single environment string over 128 KiB (MAX_ARG_STRLEN): every job would fail to start.
SHARED_PARAMS_MAX_BYTES = 120 * 1024


class SharedParamsError(Exception):
    """A job's shared params are missing from, or too large for, the environment."""


def shared_params_value(shared: dict[str, dict[str, Any]]) -> str:
    """The environment value carrying ``shared`` (rule -> params), checked against the kernel's size limit."""
    value = json.dumps(shared, ensure_ascii=False, separators=(",", ":"))
    if len(value.encode()) > SHARED_PARAMS_MAX_BYTES:
        sizes = ", ".join(f"{rule} {len(json.dumps(p)) // 1024} KiB" for rule, p in shared.items())
        raise SharedParamsError(f"the rules' shared settings ({sizes}) exceed the {SHARED_PARAMS_MAX_BYTES // 1024} "
                                "KiB a process environment string may hold. Fix: shorten the longest config "
                                "sections (caption templates, label lists).")
    return value


def with_shared_params(request: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``request`` with the params of its rule that the workflow put in the environment merged in.

    A spec without ``shared`` is returned as it is. A job started without the workflow's environment (its
    command copied from a log) fails here with what to do instead.
    """
    rule = request.get("shared")
    if not rule:
        return request
    try:
        shared = json.loads(environ[SHARED_PARAMS_ENV])[rule]
    except (KeyError, ValueError) as err:
        raise SharedParamsError(
            f"job of rule '{rule}': its settings are not in the environment ({SHARED_PARAMS_ENV}, set when "
            "Snakemake parses the workflow). Fix: run the job through snakemake (e.g. `snakemake --forcerun "
            f"{rule} <output>`), not its shell command alone.") from err
    return {**request, "params": {**shared, **request.get("params", {})}}


class Named:
    """Snakemake's Namedlist, as far as the job functions use it: ``x[0]``, ``x.name``, ``x["name"]``,
    ``x.items()``, ``x.keys()``, ``len(x)``, iteration over the values."""

    def __init__(self, pairs: list[tuple[str | None, Any]] | dict[str, Any]):
        pairs = list(pairs.items()) if isinstance(pairs, dict) else [tuple(p) for p in pairs]
        self._values = [v for _, v in pairs]
        self._names = {n: v for n, v in pairs if n is not None}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key] if isinstance(key, int) else self._names[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def items(self):
        return self._names.items()

    def keys(self):
        return self._names.keys()


class Job:
    """The ``snakemake`` object of one job, rebuilt from its spec."""

    def __init__(self, request: dict[str, Any]):
        self.input = Named(request.get("input", []))
        self.output = Named(request.get("output", []))
        self.params = Named(request.get("params", {}))
        self.wildcards = Named(request.get("wildcards", {}))
        self.log = Named([(None, p) for p in request.get("log", [])])
        self.threads = int(request.get("threads", 1))
        self.rule = request.get("rule", "")


def step_of(request: dict[str, Any]) -> str:
    """The step a job is (family name, or rule name: a layout step's rule), for messages."""
    return request.get("params", {}).get("family") or request.get("rule", "?")


def families_of(request: dict[str, Any]) -> list[str]:
    """The families (or the one step) a job computes: a layout step's ``families``, a one-family job's
    ``family``, else its rule. The worker preloads their modules; their time limits add up."""
    params = request.get("params", {})
    if params.get("families"):
        return list(params["families"])
    return [params.get("family") or request.get("rule", "?")]


def track_of(request: dict[str, Any]) -> str:
    """The track id of a job, from its wildcards (``track`` or ``parent`` + ``name``)."""
    wc = request.get("wildcards", {})
    return wc.get("track") or (wc.get("parent", "") + wc.get("name", "")) or "(corpus)"


def execute(request: dict[str, Any]) -> int:
    """Run one job's entry point; return its exit status (0 done, 1 failed with a logged message)."""
    module, _, name = request["entry"].partition(":")
    entry = getattr(importlib.import_module(module), name)
    try:
        entry(Job(request))
    except SystemExit as stop:  # job_logging reports a failure as SystemExit(1)
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
