"""The job layout derived from the registry (mirflow.layout): which families share a job."""
from __future__ import annotations

import pytest

from mirflow.layout import (
    GPU_FEATURES,
    STEM_FEATURES,
    TRACK_FEATURES,
    TRACK_INFO,
    cluster_layer,
    forget_incomplete_records,
    isolated_group,
    job_layout,
    output_name,
    split_output_name,
    step_of_family,
)
from mirflow.registry import FAMILIES, Family


def test_every_family_planned_gives_five_kinds_of_step_in_dependency_order():
    layout = job_layout(FAMILIES, FAMILIES)
    assert [s.rule for s in layout] == [TRACK_FEATURES, STEM_FEATURES, GPU_FEATURES, "bass_transcription",
                                        "captions_flamingo", TRACK_INFO]
    by_rule = {s.rule: s for s in layout}
    # A family added later (a discovered feature module) comes after these, in the step its declaration implies.
    assert by_rule[TRACK_FEATURES].families[:8] == ("loudness", "spectral", "multiband_rms", "rhythm", "harmony",
                                                    "timbral", "descriptors", "metadata")
    assert all(FAMILIES[f].scope == "mix" and not FAMILIES[f].needs_stems for f in by_rule[TRACK_FEATURES].families)
    assert by_rule[TRACK_FEATURES].probe and by_rule[TRACK_FEATURES].every_track
    assert by_rule[STEM_FEATURES].families[:5] == ("loudness_stems", "spectral_stems", "multiband_rms_stems",
                                                   "rhythm_stems", "harmony_stems")
    assert all(FAMILIES[f].scope == "stems" for f in by_rule[STEM_FEATURES].families)
    assert not by_rule[STEM_FEATURES].every_track
    assert by_rule[GPU_FEATURES].families == ("classifiers", "aesthetics", "drums")
    assert by_rule[GPU_FEATURES].lane == "gpu" and by_rule["captions_flamingo"].lane == "gpu"
    assert by_rule[TRACK_INFO].families == ("captions_feature",) and by_rule[TRACK_INFO].merge
    assert step_of_family(layout, "drums").rule == GPU_FEATURES


def test_only_planned_families_are_laid_out_and_probe_and_merge_always_run():
    layout = job_layout(FAMILIES, ["loudness", "metadata"])
    assert [(s.rule, s.families) for s in layout] == [(TRACK_FEATURES, ("loudness", "metadata")), (TRACK_INFO, ())]
    with pytest.raises(KeyError, match="spectral"):
        step_of_family(layout, "spectral")


def test_a_family_reading_the_beat_grid_comes_after_the_one_writing_it():
    families = {
        "reads_beats": Family("reads_beats", 1, "mix", "reads_beats", needs=("beats",)),
        "rhythm": Family("rhythm", 1, "mix", "rhythm"),
        "plain": Family("plain", 1, "mix", "plain"),
    }
    (features, _info) = job_layout(families, families)
    assert features.families == ("rhythm", "plain", "reads_beats")


def test_output_names_round_trip():
    assert output_name("rhythm") == "rhythm" and output_name("rhythm", "beats") == "rhythm__beats"
    assert split_output_name("rhythm__beats") == ("rhythm", "beats") and split_output_name("drums") == ("drums", None)


def test_cluster_layers_follow_the_steps_so_no_group_waits_on_a_group_that_waits_on_it():
    layers = {s.rule: cluster_layer(s) for s in job_layout(FAMILIES, FAMILIES)}
    assert layers == {TRACK_FEATURES: "signal", STEM_FEATURES: "signal", "bass_transcription": "signal",
                      GPU_FEATURES: "listen", "captions_flamingo": "listen", TRACK_INFO: "finish"}


def test_a_track_running_alone_gets_its_own_group_name_per_layer():
    one, again = isolated_group("signal", "Band/Song"), isolated_group("signal", "Band/Song")
    assert one == again and one.startswith("signal_alone_") and one != "signal"
    assert isolated_group("finish", "Band/Song").startswith("finish_alone_")
    assert len({isolated_group("signal", t) for t in ("Band/Song", "Band/Song2", "song", "Bänd/Sóng\udcff")}) == 4


def test_a_step_record_is_removed_only_where_one_of_the_steps_outputs_is_missing(tmp_path):
    products = ["features/loudness.json", "{name}.BEATS_GRID"]
    folders = {}
    for name, present in (("complete", products), ("no grid", products[:1]), ("never ran", [])):
        folder = tmp_path / "Album" / name
        for rel in ["logs/probe.json", *present] if present else []:
            path = folder / rel.replace("{name}", name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        folders[name] = folder
    removed = forget_incomplete_records([str(f) for f in folders.values()], record="logs/probe.json",
                                        products=products, names=list(folders))
    assert removed == [str(folders["no grid"] / "logs" / "probe.json")]
    assert (folders["complete"] / "logs" / "probe.json").exists()
    assert not (folders["no grid"] / "logs" / "probe.json").exists()
    assert (folders["no grid"] / "features" / "loudness.json").exists()  # the step's outputs are left alone
    # Nothing left to remove: a second look changes nothing.
    assert forget_incomplete_records([str(f) for f in folders.values()], record="logs/probe.json",
                                     products=products, names=list(folders)) == []
