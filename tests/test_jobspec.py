"""Job specs: the params every job of a rule shares travel in the environment, once per run."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO
from mirflow.jobspec import (
    SHARED_PARAMS_ENV,
    SHARED_PARAMS_MAX_BYTES,
    SharedParamsError,
    shared_params_value,
    with_shared_params,
)


def test_a_spec_naming_its_rule_gets_the_rules_shared_params_and_keeps_its_own():
    env = {SHARED_PARAMS_ENV: shared_params_value({
        "track_features": {"settings": {"spectral": {"hop_length": 256}}, "step": "from the environment"},
        "crops": {"settings": {"mode": "bars"}},
    })}
    spec = {"rule": "track_features", "shared": "track_features",
            "params": {"step": "track_features", "families": ["spectral"]}}
    merged = with_shared_params(spec, env)
    assert merged["params"] == {"settings": {"spectral": {"hop_length": 256}}, "step": "track_features",
                                "families": ["spectral"]}
    assert "settings" not in spec["params"]  # the caller's spec is not modified


def test_a_spec_without_shared_params_is_returned_unchanged():
    spec = {"rule": "track_features", "params": {"settings": {"loudness": {}}}}
    assert with_shared_params(spec, {}) is spec


def test_a_job_started_without_the_workflows_environment_says_how_to_run_it():
    with pytest.raises(SharedParamsError, match="rule 'crops'.*run the job through snakemake"):
        with_shared_params({"rule": "crops", "shared": "crops", "params": {}}, {})
    # The variable is set but lacks this rule (a spec from another version of the workflow).
    with pytest.raises(SharedParamsError, match="rule 'crops'"):
        with_shared_params({"rule": "crops", "shared": "crops"},
                           {SHARED_PARAMS_ENV: shared_params_value({"track_info": {}})})


def test_shared_params_over_the_kernels_environment_string_limit_are_refused_with_the_largest_named():
    too_long = {"captions_feature": {"settings": {"template": "x" * SHARED_PARAMS_MAX_BYTES}}, "crops": {}}
    with pytest.raises(SharedParamsError, match=r"captions_feature 120 KiB, crops 0 KiB"):
        shared_params_value(too_long)


def test_the_thin_client_fails_the_job_with_that_message_when_the_environment_lacks_the_params(tmp_path):
    spec = json.dumps({"entry": "mirflow.runner:run_step_job", "rule": "crops", "shared": "crops", "params": {}})
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "scripts")}
    done = subprocess.run([sys.executable, "-S", str(REPO / "scripts" / "rule_job.py"), spec,
                           str(tmp_path / "job.log"), "1"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "job of rule 'crops': its settings are not in the environment (MIRFLOW_JOB_PARAMS" in done.stderr
