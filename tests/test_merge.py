"""The merge: flat keys, provenance, warnings without clamping, and loud failures on inconsistencies."""
import pytest

from mirflow.merge import MergeError, merge_partials


def _partial(family, values, absent=None):
    return {**values, "_meta": {"family": family, "version": 1, "scope": "mix", "params": {},
                                "absent": absent or {}, "wall_time_s": 0.1}}


def test_merge_flattens_values_and_records_provenance():
    info = merge_partials("a/b", {
        "loudness": _partial("loudness", {"lufs": -14.0}, {"lra": "too short (< 3.0 s)"}),
        "multiband_rms": _partial("multiband_rms", {"rms_energy_bass": -12.0, "rms_energy_body": -15.0,
                                                    "rms_energy_mid": -20.0, "rms_energy_air": 3.0}),
    }, {"spectral": "disabled in the config"})
    assert info["lufs"] == -14.0 and info["rms_energy_air"] == 3.0  # out of range: kept as is
    prov = info["_provenance"]
    assert prov["track_id"] == "a/b"
    assert prov["absent"]["lra"] == "too short (< 3.0 s)"
    assert prov["absent"]["spectral_flux"].startswith("family spectral not computed: disabled")
    assert prov["missing_families"] == {"spectral": "disabled in the config"}
    assert any("rms_energy_air=3.0" in w for w in prov["warnings"])
    assert set(prov["families"]) == {"loudness", "multiband_rms"}


def test_uncatalogued_key_fails_loudly():
    with pytest.raises(MergeError, match="not in the feature catalogue"):
        merge_partials("t", {"loudness": _partial("loudness", {"lufs": -1.0, "lra": 2.0, "loudness_max": 1.0})}, {})


def test_key_without_value_or_reason_fails():
    with pytest.raises(MergeError, match="neither a value nor a reason"):
        merge_partials("t", {"loudness": _partial("loudness", {"lufs": -10.0})}, {})


def test_key_from_wrong_family_fails():
    with pytest.raises(MergeError, match="belongs to family"):
        merge_partials("t", {"spectral": _partial("spectral", {"lufs": -10.0})}, {})


def test_wrong_type_fails():
    with pytest.raises(MergeError, match="type number"):
        merge_partials("t", {"loudness": _partial("loudness", {"lufs": "-10", "lra": 1.0})}, {})
