"""The registry finds the families the feature modules declare, in a stable order (issue 15: one family, one
definition)."""
import importlib
import pkgutil

import pytest

import mirflow.features
from mirflow.features import Family, pair
from mirflow.registry import FAMILIES

# The registry order before families declared themselves: the order of the families within a job step and of the
# layout. Families added since (discovered feature modules) come after these.
ORDER_BEFORE_DISCOVERY = (
    "loudness", "loudness_stems", "spectral", "spectral_stems", "multiband_rms", "multiband_rms_stems", "rhythm",
    "rhythm_stems", "harmony", "harmony_stems", "timbral", "descriptors", "metadata", "classifiers", "aesthetics",
    "captions_feature", "captions_flamingo", "drums", "bass_transcription",
)


def test_existing_families_keep_their_order_and_new_ones_come_after():
    assert tuple(FAMILIES)[:len(ORDER_BEFORE_DISCOVERY)] == ORDER_BEFORE_DISCOVERY


def _declared(module) -> tuple[Family, ...]:
    return (module.FAMILY,) if hasattr(module, "FAMILY") else tuple(getattr(module, "FAMILIES", ()))


def test_every_family_a_feature_module_declares_is_registered_as_declared():
    declared = {}
    for info in pkgutil.iter_modules(mirflow.features.__path__):
        for fam in _declared(importlib.import_module(f"mirflow.features.{info.name}")):
            declared[fam.name] = fam
    assert {"loudness", "spectral_stems", "rhythm", "harmony_stems", "timbral", "descriptors"} <= set(declared)
    for name, fam in declared.items():
        assert FAMILIES[name] is fam, name


def test_pair_declares_a_mix_family_and_its_per_stem_twin():
    mix, stems = pair(name="demo", version=3, compute="m:f", libraries=("numpy",), description="Demo",
                      needs=("beats",))
    assert (mix.name, mix.scope, mix.settings) == ("demo", "mix", "demo")
    assert (stems.name, stems.scope, stems.settings, stems.description) == ("demo_stems", "stems", "demo",
                                                                           "Demo (per stem)")
    assert mix.version == stems.version == 3 and mix.needs == stems.needs == ("beats",) and stems.needs_stems
    with pytest.raises(TypeError):
        pair("demo", 1, "m:f", ("numpy",), "Demo")  # keyword-only: a declaration reads as its fields
