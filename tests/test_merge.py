"""The merge: flat keys, provenance, warnings without clamping, and loud failures on inconsistencies."""
import pytest

from mirflow.merge import MergeError, merge_partials
from mirflow.provenance import absent_reason, absent_reasons


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
    # A missing family's reason is stored once, with its keys; every absent key's reason stays reachable.
    assert "spectral_flux" not in prov["absent"] and "spectral_flux" in prov["missing_family_keys"]["spectral"]
    assert absent_reason(prov, "spectral_flux") == "family spectral not computed: disabled in the config"
    assert absent_reasons(prov)["lra"] == "too short (< 3.0 s)"
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


def test_each_input_and_each_reason_is_stored_once():
    from mirflow.catalogue import load_catalogue

    mix = {"path": "/music/a.flac", "size_bytes": 10, "quick_sha256": "ab"}
    facts = {"sample_rate": 44100, "channels": 2, "duration_s": 3.5, "decoder": "soundfile"}
    partials = {fam: _partial(fam, vals, absent) for fam, vals, absent in (
        ("loudness", {"lufs": -14.0, "lra": 3.0}, None),
        ("multiband_rms", {"rms_energy_bass": -12.0, "rms_energy_body": -15.0, "rms_energy_mid": -20.0,
                           "rms_energy_air": -30.0}, None))}
    for fam in partials:
        partials[fam]["_meta"].update(inputs={"audio": mix}, audio={"audio": facts}, details={"big": "x" * 500})
    missing = {"classifiers": "model 'x' is missing (`make models` fetches it)", "spectral": "disabled"}
    prov = merge_partials("t", partials, missing)["_provenance"]
    assert prov["inputs"] == {"/music/a.flac": {"size_bytes": 10, "quick_sha256": "ab", **facts}}
    assert prov["families"]["loudness"]["inputs"] == {"audio": "/music/a.flac"}
    assert "audio" not in prov["families"]["loudness"] and "details" not in prov["families"]["loudness"]
    cat = load_catalogue()
    assert prov["missing_family_keys"] == {f: sorted(cat.keys_for_family(f)) for f in missing}
    text = repr(prov)
    assert text.count("`make models` fetches it") == 1 and text.count("disabled") == 1
    reasons = absent_reasons(prov)
    for fam, why in missing.items():
        for key in cat.keys_for_family(fam):
            assert reasons[key] == f"family {fam} not computed: {why}"
    assert prov["families"]["loudness"]["params"] == {} and "mirflow_version" not in prov["families"]["loudness"]
    partials["multiband_rms"]["_meta"]["inputs"]["audio"] = {**mix, "quick_sha256": "cd"}
    with pytest.raises(MergeError, match="different contents"):
        merge_partials("t", partials, missing)


def test_a_stem_twin_with_the_same_params_stores_them_once_and_the_info_layout_is_compact(tmp_path):
    from mirflow.jsonio import read_json, write_json_atomic
    from mirflow.merge import INFO_INLINE_FROM

    params = {"block_s": 0.4, "gate": [-70, -10]}
    partials = {"loudness": _partial("loudness", {"lufs": -14.0, "lra": 3.0}),
                "loudness_stems": _partial("loudness_stems", {}, dict.fromkeys(
                    ("lufs_drums", "lra_drums", "lufs_bass", "lra_bass", "lufs_other", "lra_other", "lufs_vocals",
                     "lra_vocals"), "silent stem"))}
    for p in partials.values():
        p["_meta"]["params"] = params
    info = merge_partials("t", partials, {})
    fams = info["_provenance"]["families"]
    assert fams["loudness"]["params"] == params
    assert fams["loudness_stems"]["params_same_as"] == "loudness" and "params" not in fams["loudness_stems"]
    path = tmp_path / "t.INFO"
    write_json_atomic(path, info, inline_from=INFO_INLINE_FROM)
    assert read_json(path) == info
    text = path.read_text(encoding="utf-8")
    assert '      "params": {"block_s": 0.4, "gate": [-70, -10]},\n' in text  # a family's params on one line
    assert text.startswith('{\n  "lra": 3.0,\n  "lufs": -14.0,\n  "_provenance": {\n')


def test_a_family_reading_other_families_lists_them_by_name_not_by_file():
    from mirflow.provenance import shared_inputs

    fp = {"path": "/m/a.flac", "size_bytes": 10, "quick_sha256": "ab"}
    families = {
        "loudness": {"inputs": {"audio": fp}, "audio": {"audio": {"sample_rate": 44100}}},
        "captions_feature": {"inputs": {"features_rhythm": {"path": "/r/t/features/rhythm.json", "size_bytes": 5,
                                                            "quick_sha256": "cd"},
                                        "features_harmony": {"path": "/r/t/features/harmony.json", "size_bytes": 6,
                                                             "quick_sha256": "ef"}}},
    }
    out, inputs = shared_inputs(families)
    assert out["captions_feature"]["inputs"] == {}
    assert out["captions_feature"]["reads_families"] == ["harmony", "rhythm"]
    assert list(inputs) == ["/m/a.flac"] and inputs["/m/a.flac"]["sample_rate"] == 44100
    assert "reads_families" not in out["loudness"]
