"""danceability / atonality: model heads when present, else the classic algorithms; the source is recorded."""
import pytest

from mirflow.merge import MergeError, merge_partials
from mirflow.resolved import DEFAULT_PARAMS, ResolveError, check_sources, resolve_keys

DESCRIPTOR_ABSENT = {"saturation_ratio": "x", "saturation_count": "x", "dynamic_complexity": "x",
                     "loudness_momentary_max": "x", "loudness_shortterm_max": "x"}


def _partial(family, values, absent=None):
    return {**values, "_meta": {"family": family, "version": 1, "scope": "mix", "params": {},
                                "absent": absent or {}, "wall_time_s": 0.1}}


def test_model_head_wins_over_the_classic_value_and_the_source_is_recorded():
    values = {"effnet_danceability": 0.8123, "musicnn_danceability": 0.4, "danceability_dfa": 1.5,
              "musicnn_atonality": 0.02, "atonality_key_profile": 0.3}
    absent = {"effnet_atonality": "model tonal_atonal-discogs-effnet-1 not available"}
    resolved, reasons, prov = resolve_keys(values, absent)
    assert resolved == {"danceability": 0.8123, "atonality": 0.02}
    assert reasons == {}
    assert prov["danceability"]["source"] == "effnet_danceability" and prov["danceability"]["skipped"] == {}
    assert prov["atonality"]["source"] == "musicnn_atonality"
    assert prov["atonality"]["skipped"] == {"effnet_atonality": "model tonal_atonal-discogs-effnet-1 not available"}


def test_classic_fallback_is_scaled_to_0_1_without_clipping():
    resolved, _, prov = resolve_keys({"danceability_dfa": 1.5, "atonality_key_profile": 0.25}, {})
    assert resolved["danceability"] == pytest.approx(0.5, abs=1e-12)
    assert prov["danceability"]["scale"] == pytest.approx(1 / 3)
    assert "not a probability" in prov["danceability"]["method"]
    assert resolved["atonality"] == 0.25 and prov["atonality"]["source"] == "atonality_key_profile"
    # A steady drum loop (DFA 5.7) is above the nominal range: kept, not clipped.
    loop, _, _ = resolve_keys({"danceability_dfa": 5.7}, {}, {"danceability": ["danceability_dfa"]})
    assert loop["danceability"] == pytest.approx(1.9)


def test_no_source_leaves_the_key_absent_with_every_reason():
    absent = {"effnet_danceability": "model discogs-effnet-bs64-1 not available",
              "musicnn_danceability": "silent", "danceability_dfa": "silent"}
    resolved, reasons, prov = resolve_keys({}, absent, {"danceability": list(DEFAULT_PARAMS["danceability"])})
    assert resolved == {}
    assert reasons["danceability"] == ("no source has a value: effnet_danceability: model discogs-effnet-bs64-1 "
                                       "not available; musicnn_danceability: silent; danceability_dfa: silent")
    assert prov["danceability"]["source"] is None


def test_configured_order_and_single_source():
    values = {"effnet_danceability": 0.9, "danceability_dfa": 1.2}
    classic_only, _, prov = resolve_keys(values, {}, {"danceability": ["danceability_dfa"]})
    assert classic_only == {"danceability": 0.4} and prov["danceability"]["source"] == "danceability_dfa"
    musicnn_first, reasons, _ = resolve_keys(values, {}, {"danceability": ["musicnn_danceability"]})
    assert musicnn_first == {} and reasons["danceability"].endswith("musicnn_danceability: not computed")


@pytest.mark.parametrize("params, message", [
    ({"tempo": ["bpm"]}, "not a resolved key"),
    ({"danceability": []}, "at least one source"),
    ({"danceability": ["lufs"]}, "sources must be distinct keys"),
    ({"atonality": ["atonality_key_profile", "atonality_key_profile"]}, "sources must be distinct keys"),
])
def test_bad_source_lists_are_rejected(params, message):
    with pytest.raises(ResolveError, match=message):
        check_sources(params)


def test_merge_writes_resolved_keys_with_provenance():
    partials = {
        "descriptors": _partial("descriptors", {"danceability_dfa": 1.2, "atonality_key_profile": 0.1},
                                DESCRIPTOR_ABSENT),
    }
    info = merge_partials("t", partials, {"classifiers": "models missing: discogs-effnet-bs64-1, msd-musicnn-1"})
    assert info["danceability"] == pytest.approx(0.4) and info["danceability_dfa"] == 1.2
    assert info["atonality"] == 0.1
    prov = info["_provenance"]["resolved"]
    assert prov["danceability"]["source"] == "danceability_dfa"
    assert prov["danceability"]["skipped"]["effnet_danceability"].startswith("family classifiers not computed")

    with_models = dict(partials)
    classifier_keys = {"effnet_danceability": 0.7, "musicnn_danceability": 0.6, "effnet_atonality": 0.05,
                       "musicnn_atonality": 0.04}
    from mirflow.catalogue import load_catalogue

    others = {k: "model not available" for k in load_catalogue().keys_for_family("classifiers")
              if k not in classifier_keys}
    with_models["classifiers"] = _partial("classifiers", classifier_keys, others)
    info = merge_partials("t", with_models, {})
    assert info["danceability"] == 0.7 and info["atonality"] == 0.05
    assert info["_provenance"]["resolved"]["danceability"]["source"] == "effnet_danceability"

    # The config may pin the classic source for a corpus processed with and without models.
    info = merge_partials("t", with_models, {}, resolved_sources={"danceability": ["danceability_dfa"],
                                                                  "atonality": ["atonality_key_profile"]})
    assert info["danceability"] == pytest.approx(0.4) and info["atonality"] == 0.1


def test_a_family_cannot_write_a_resolved_key():
    partial = _partial("descriptors", {"danceability": 0.5, "danceability_dfa": 1.5,
                                       "atonality_key_profile": 0.1}, DESCRIPTOR_ABSENT)
    with pytest.raises(MergeError, match="belongs to family 'resolved'"):
        merge_partials("t", {"descriptors": partial}, {})
