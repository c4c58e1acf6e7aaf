"""The catalogue is complete, consistent with the registry, and the feature reference (docs/features.md) is generated
from it."""
import json

import pytest

from conftest import REPO
from mirflow.catalogue import load_catalogue, render_readme
from mirflow.registry import FAMILIES, STEM_NAMES


def test_every_registered_family_has_catalogued_keys():
    cat = load_catalogue()
    for name, fam in FAMILIES.items():
        keys = cat.keys_for_family(name)
        assert keys, f"family {name} has no catalogue entries"
        if fam.scope == "stems":
            assert any(cat.stem_keys(name, stem) for stem in STEM_NAMES), f"{name} lists no per-stem keys"
        else:
            assert not any(cat.entry(k).is_template for k in keys), f"{name} is a mix family with stem keys"


def test_catalogue_families_are_registered_and_declare_a_crop_policy():
    from mirflow.catalogue import CROP_FAMILY, RESOLVED_FAMILY

    cat = load_catalogue()
    assert set(cat.families()) - {CROP_FAMILY, RESOLVED_FAMILY} <= set(FAMILIES)
    assert set(cat.crop_policy) == set(FAMILIES) | {RESOLVED_FAMILY}, "every family declares its crop policy"


def test_resolved_keys_and_their_sources_are_catalogued_numbers():
    from mirflow.catalogue import RESOLVED_FAMILY
    from mirflow.resolved import DEFAULT_PARAMS, SOURCES

    cat = load_catalogue()
    assert set(cat.keys_for_family(RESOLVED_FAMILY)) == set(SOURCES) == set(DEFAULT_PARAMS)
    for key, sources in SOURCES.items():
        assert cat.entry(key).type == "number"
        assert set(DEFAULT_PARAMS[key]) == set(sources), f"{key}: the default order lists every source"
        for source in sources:
            assert cat.entry(source).family != RESOLVED_FAMILY and cat.entry(source).type == "number"
            assert source in cat.entry(key).producer, f"the producer of {key} names its source {source}"


def test_feature_reference_matches_catalogue():
    reference = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert render_readme(reference) == reference, "docs/features.md out of date: run `make readme`"
    assert "docs/features.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_check_value_warns_without_clamping_and_rejects_wrong_types():
    cat = load_catalogue()
    assert cat.check_value("lufs", -14.0) is None
    warning = cat.check_value("lufs", 2.5)
    assert "outside the expected range" in warning and "2.5" in warning
    with pytest.raises(TypeError):
        cat.check_value("lufs", "loud")
    with pytest.raises(TypeError):
        cat.check_value("lufs", True)
    with pytest.raises(KeyError):
        cat.check_value("lufs_piano", -20.0)


def test_stem_templates_expand():
    cat = load_catalogue()
    assert cat.entry("lufs_drums").family == "loudness_stems"
    assert set(cat.stem_keys("loudness_stems", "bass")) == {"lufs_bass", "lra_bass"}


def test_every_registered_family_is_computed_by_exactly_one_step_of_the_job_layout():
    """A family registered without a step would silently vanish from .INFO files that already exist."""
    from mirflow.layout import job_layout

    steps = [name for step in job_layout(FAMILIES, FAMILIES) for name in step.families]
    assert sorted(steps) == sorted(FAMILIES)


def test_parameter_reference_lists_every_typed_parameter_with_its_default():
    from mirflow.params import reference_rows
    from mirflow.registry import FAMILIES

    reference = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    typed = {fam.params for fam in FAMILIES.values() if fam.params is not None}
    assert typed
    for cls in typed:
        for row in reference_rows(cls):
            assert f"| `{row['key']}` | `{json.dumps(row['default'])}` |" in reference, (cls.__name__, row["key"])
    assert "| `hop_length` | `512` | samples | an integer >= 1 (samples) | Hop between frames |" in reference
