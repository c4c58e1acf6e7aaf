"""Command-line config overrides: nested values work as they read; a bad key is one line with a did-you-mean."""
from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO
from mirflow.configcheck import config_problem, merge, type_overrides
from mirflow.params import with_family_sections
from mirflow.registry import FAMILIES

# As common.smk builds it: the family switches and typed sections generated from the registry.
SCHEMA = with_family_sections(yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text()),
                              FAMILIES.values())
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _cli(*entries: str) -> dict:
    """What Snakemake's own --config parser makes of the entries."""
    from snakemake.cli import parse_config

    return parse_config(list(entries))


def _apply(*entries: str) -> dict:
    return merge(CONFIG, type_overrides(_cli(*entries), SCHEMA))


def test_nested_overrides_merge_onto_the_defaults_with_their_types():
    # Snakemake alone delivers strings: the schema would reject them.
    assert _cli('families={spectral_stems: false}') == {"families": {"spectral_stems": "false"}}
    config = _apply('families={spectral_stems: false}', 'crops={length_samples: 524288}', "results_dir=out")
    assert config["families"]["spectral_stems"] is False
    assert config["families"]["spectral"] is True and len(config["families"]) == len(CONFIG["families"])
    assert config["crops"]["length_samples"] == 524288
    assert config["crops"]["mode"] == CONFIG["crops"]["mode"]
    assert config["results_dir"] == "out"
    assert config_problem(config, SCHEMA) is None


def test_string_settings_stay_strings():
    config = _apply('separation={model: htdemucs, device: "123"}')
    assert config["separation"]["model"] == "htdemucs" and config["separation"]["device"] == "123"
    assert config["separation"]["shifts"] == CONFIG["separation"]["shifts"]


def test_merge_leaves_its_arguments_alone():
    base = copy.deepcopy(CONFIG)
    merge(base, {"crops": {"length_samples": 1}})
    assert base == CONFIG


@pytest.mark.parametrize("entry, expected", [
    ("famlies={spectral_stems: false}", "unknown config key 'famlies' (did you mean 'families'?);"),
    ("crops={length_sample: 5}", "unknown config key 'length_sample' (did you mean 'length_samples'?) in 'crops';"),
    ("families={spectral_stem: false}", "(did you mean 'spectral_stems'?) in 'families'"),
])
def test_unknown_key_is_one_line_with_a_did_you_mean(entry, expected):
    problem = config_problem(_apply(entry), SCHEMA)
    assert expected in problem and "\n" not in problem and len(problem) < 600


@pytest.mark.parametrize("entry, key", [("crops={length_samples: big}", "crops.length_samples"),
                                        ("families=false", "families")])
def test_wrong_type_names_the_key_and_says_how_to_write_nested_values(entry, key):
    problem = config_problem(_apply(entry), SCHEMA)
    assert problem.startswith(f"config key '{key}':") and "\n" not in problem
    assert '--config families="{spectral_stems: false}"' in problem
