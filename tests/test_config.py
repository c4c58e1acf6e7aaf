"""config/config.yaml, the JSON schema and the code defaults must agree, so the docs cannot drift."""
import importlib
import json

import pytest
import yaml

from conftest import REPO
from mirflow.errors import ConfigError
from mirflow.params import as_dict, defaults, fill_defaults, from_config, with_family_sections
from mirflow.registry import FAMILIES

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
# As common.smk builds it: the typed families' sections generated from their parameter classes.
SCHEMA = with_family_sections(yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text()),
                              FAMILIES.values())
TYPED = {fam.settings: fam.params for fam in FAMILIES.values() if fam.params is not None}
# Sections not yet typed: their DEFAULT_PARAMS dicts are kept equal to config.yaml by hand (issue 15, bullet 4).
MODULES = {
    "separation": "mirflow.separation",
    "crops": "mirflow.crops",
    "stats": "mirflow.stats",
    "report": "mirflow.report",
    "exports": "mirflow.exports.prompt",
    "resolved": "mirflow.resolved",
}


def test_every_family_is_switchable_and_has_a_settings_section():
    # The switches are generated from the registry; config.yaml need not list a family (one not named is on).
    assert set(CONFIG["families"]) <= set(FAMILIES)
    assert set(SCHEMA["properties"]["families"]["properties"]) == set(FAMILIES)
    assert SCHEMA["properties"]["families"]["additionalProperties"] is False
    for fam in FAMILIES.values():
        assert fam.settings in CONFIG or fam.params is not None, f"config/config.yaml has no section '{fam.settings}'"
        assert fam.settings in SCHEMA["properties"], f"schema has no section '{fam.settings}'"


@pytest.mark.parametrize("section, module", sorted(MODULES.items()))
def test_config_section_equals_code_defaults(section, module):
    defaults = importlib.import_module(module).DEFAULT_PARAMS
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
            if props is not None and section == "families":  # a family config.yaml does not name is on
                assert set(values) <= set(props), f"config.yaml switches a family the registry lacks: {values}"
            elif props is not None:
                assert set(values) == set(props), f"schema and config disagree in section {section}"


def test_default_config_validates():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(CONFIG, SCHEMA)


def test_typed_sections_are_generated_not_repeated():
    assert {"loudness", "spectral"} <= set(TYPED)
    for section, cls in TYPED.items():
        assert section not in CONFIG, f"config/config.yaml repeats the defaults of '{section}'"
        props = SCHEMA["properties"][section]["properties"]
        # schema defaults == dataclass defaults, key for key, in declaration order
        assert {k: v["default"] for k, v in props.items()} == defaults(cls)
        assert section not in SCHEMA["required"]


def test_config_without_typed_sections_gets_the_defaults():
    filled = {**CONFIG, **fill_defaults(CONFIG, FAMILIES.values())}
    assert filled["spectral"] == {"frame_length": 2048, "hop_length": 512, "window": "hann"}
    assert filled["loudness"]["block_s"] == 0.4 and filled["loudness"]["lra_high_percentile"] == 95.0
    # A partial section keeps the user's value as written and defaults the rest.
    partial = fill_defaults({"spectral": {"hop_length": 256}}, FAMILIES.values())["spectral"]
    assert partial == {"frame_length": 2048, "hop_length": 256, "window": "hann"}


def test_partial_nested_section_keeps_its_other_defaults():
    """``harmony: {chroma: {hop_size: 1024}}`` changes that key only: chroma keeps its other keys (not hpcp's)."""
    harmony = TYPED["harmony"]
    filled = fill_defaults({"harmony": {"chroma": {"hop_size": 1024}}}, FAMILIES.values())["harmony"]
    assert filled == {**defaults(harmony), "chroma": {**defaults(harmony)["chroma"], "hop_size": 1024}}
    params = from_config(harmony, filled, where="harmony")
    assert params.chroma.hop_size == 1024 and params.chroma.window == "blackmanharris62"
    assert params.hpcp == harmony().hpcp


def test_provenance_of_the_default_config_is_unchanged():
    """``_meta.params`` of the default config: exactly the values (and types) config.yaml had before issue 15."""
    before = {
        "loudness": {"block_s": 0.4, "block_hop_s": 0.1, "absolute_gate_lufs": -70.0, "relative_gate_lu": -10.0,
                     "short_term_s": 3.0, "short_term_hop_s": 0.1, "lra_relative_gate_lu": -20.0,
                     "lra_low_percentile": 10.0, "lra_high_percentile": 95.0},
        "spectral": {"frame_length": 2048, "hop_length": 512, "window": "hann"},
    }
    filled = fill_defaults(CONFIG, FAMILIES.values())
    for section, values in before.items():
        assert filled[section] == values
        assert [type(v) for v in filled[section].values()] == [type(v) for v in values.values()]
        assert as_dict(from_config(TYPED[section], {}, where=section)) == values


# The sections as config.yaml wrote them before their parameter classes (issue 15), verbatim.
BEFORE = yaml.safe_load((REPO / "tests" / "fixtures" / "params_before_issue15.yaml").read_text())


@pytest.mark.parametrize("section", sorted(BEFORE))
def test_provenance_of_a_converted_section_is_unchanged(section):
    """The default config records exactly the old values, nested sections and lists included; JSON tells an
    integer from a float, so a default of the wrong type fails too."""
    assert section in TYPED and section not in CONFIG
    filled = fill_defaults(CONFIG, FAMILIES.values())[section]
    assert json.dumps(filled) == json.dumps(BEFORE[section])  # same keys, order, values and types
    assert json.dumps(as_dict(from_config(TYPED[section], {}, where=section))) == json.dumps(BEFORE[section])
    # and the old section written out in full is still a valid config for the class
    assert from_config(TYPED[section], BEFORE[section], where=section) == TYPED[section]()


@pytest.mark.parametrize("section, value", [
    ({"spectral": {"frame_length": 32}}, "spectral.frame_length"),        # out of range
    ({"spectral": {"window": "boxcar"}}, "spectral.window"),              # bad choice
    ({"loudness": {"block_s": "0.4s"}}, "loudness.block_s"),              # wrong type
    ({"loudness": {"lra_high_percentile": 101}}, "loudness.lra_high_percentile"),
    ({"harmony": {"chroma": {"frame_size": 1}}}, "harmony.chroma.frame_size"),  # nested section
    ({"rhythm": {"beats_per_bar": [1, 4]}}, "rhythm.beats_per_bar"),            # list item not a choice
    ({"multiband_rms": {"bands_hz": {"bass": [20.0]}}}, "multiband_rms.bands_hz.bass"),  # pair of one
])
def test_bad_typed_value_names_the_key(section, value):
    from mirflow.configcheck import config_problem
    (name, body), = section.items()
    with pytest.raises(ConfigError, match=value.replace(".", r"\.")):
        from_config(TYPED[name], body, where=name)
    problem = config_problem({**CONFIG, **section}, SCHEMA)
    assert problem and value in problem


def test_unknown_typed_key_gets_did_you_mean():
    from mirflow.configcheck import config_problem
    problem = config_problem({**CONFIG, "spectral": {"hop_lenght": 256}}, SCHEMA)
    assert "did you mean 'hop_length'" in problem and "'spectral'" in problem

