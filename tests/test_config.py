"""config/config.yaml, the JSON schema and the code defaults must agree, so the docs cannot drift."""
import importlib

import pytest
import yaml

from conftest import REPO
from mirflow.registry import FAMILIES

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
MODULES = {
    "loudness": "mirflow.features.loudness",
    "spectral": "mirflow.features.spectral",
    "multiband_rms": "mirflow.features.multiband",
    "rhythm": "mirflow.features.rhythm",
    "separation": "mirflow.separation",
    "harmony": "mirflow.features.harmony",
    "timbral": "mirflow.features.timbral",
    "descriptors": "mirflow.features.descriptors",
    "crops": "mirflow.crops",
    "metadata": "mirflow.metadata",
    "stats": "mirflow.stats",
    "report": "mirflow.report",
    "exports": "mirflow.exports.prompt",
    "classifiers": "mirflow.classifiers",
    "resolved": "mirflow.resolved",
    "aesthetics": "mirflow.aesthetics",
    "captions_feature": "mirflow.captions.feature_captions",
    "captions_flamingo": "mirflow.captions.flamingo",
}


def test_every_family_is_switchable_and_has_a_settings_section():
    assert set(CONFIG["families"]) == set(FAMILIES)
    assert set(SCHEMA["properties"]["families"]["properties"]) == set(FAMILIES)
    for fam in FAMILIES.values():
        assert fam.settings in CONFIG, f"config/config.yaml has no section '{fam.settings}'"
        assert fam.settings in SCHEMA["properties"], f"schema has no section '{fam.settings}'"


@pytest.mark.parametrize("section, module", sorted(MODULES.items()) + [("harmony_stems", "mirflow.features.harmony")])
def test_config_section_equals_code_defaults(section, module):
    attr = "STEM_DEFAULT_PARAMS" if section == "harmony_stems" else "DEFAULT_PARAMS"
    defaults = getattr(importlib.import_module(module), attr)
    # enabled/force decide which tracks are separated (workflow wiring), not how.
    config = {k: v for k, v in CONFIG[section].items()
              if not (section == "separation" and k in ("enabled", "force"))
              and not (section == "crops" and k == "enabled")}
    assert set(config) <= set(defaults), f"unknown keys in config section {section}"
    for key, value in config.items():
        if key == "segment_s" and value is None:
            continue
        assert value == defaults[key], f"{section}.{key}: config {value!r} != code default {defaults[key]!r}"


def test_schema_sections_list_exactly_the_config_keys():
    for section, values in CONFIG.items():
        if isinstance(values, dict) and section in SCHEMA["properties"]:
            props = SCHEMA["properties"][section].get("properties")
            if props is not None:
                assert set(values) == set(props), f"schema and config disagree in section {section}"


def test_default_config_validates():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(CONFIG, SCHEMA)
