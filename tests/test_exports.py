"""Training exports: the Stable Audio Tools custom metadata module (loaded the way SAT loads it) and
AudioCraft MusicInfo sidecars, run against constructed results folders."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mirflow.exports.stable_audio as sat
from mirflow.exports.audiocraft import MUSICINFO_FIELDS, musicinfo_from_info, write_crop_sidecars
from mirflow.exports.prompt import TemplateError, build_prompt, conditioning, parse_template, top_labels

MODULE_PATH = Path(sat.__file__)

TRACK_INFO = {
    "bpm": 124.3, "bpm_is_defined": 1, "lufs": -9.5, "key": "A minor",
    "track_metadata_artist": "Sigur Rós", "track_metadata_title": "Hoppípolla \u2014 live",
    "essentia_genre": {"Electronic---Deep House": 0.62, "Electronic---Techno": 0.31, "Rock---Punk": 0.05},
    "essentia_mood": {"dark": 0.4, "energetic": 0.2},
    "essentia_instrument": {"synthesizer": 0.7, "drummachine": 0.5, "piano": 0.01},
    "_provenance": {"absent": {}},
}
TEMPLATE = "[{genres}, ]{bpm:.0f} BPM[, {key}][, by {track_metadata_artist}]"


def _info_file(path: Path, info: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    return path


def _audio(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros((4410, 2), dtype=np.float32), 44100)
    return path


def _sat_info(path: Path) -> dict:
    """The info dict Stable Audio Tools' SampleDataset passes (audio_dir datasets)."""
    return {"path": str(path), "relpath": path.name, "timestamps": (0.0, 0.5), "seconds_start": 0,
            "seconds_total": 47, "padding_mask": [1] * 8, "sample_rate": 44100, "load_time": 0.01}


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """Inputs read in place (input/), results elsewhere (results/): a track, a crop and a crop stem."""
    inputs, results = tmp_path / "input", tmp_path / "results"
    inputs.mkdir()
    track_audio = _audio(inputs / "Song" / "full_mix.flac")
    track_info = _info_file(results / "Song" / "Song.INFO", TRACK_INFO)
    weak_audio = _audio(inputs / "weak.flac")
    _info_file(results / "weak" / "weak.INFO", {**TRACK_INFO, "bpm_is_defined": 0})
    quiet_audio = _audio(inputs / "quiet.flac")
    quiet = {k: v for k, v in TRACK_INFO.items() if k != "lufs"}
    _info_file(results / "quiet" / "quiet.INFO", {**quiet, "_provenance": {"absent": {"lufs": "silent"}}})
    crop_audio = _audio(results / "Song" / "crops" / "Song_1.flac")
    _info_file(results / "Song" / "crops" / "Song_1.INFO", {**TRACK_INFO, "bpm": 123.6, "key": "C major"})
    stem_audio = _audio(results / "Song" / "crops" / "Song_1_drums.flac")
    sat.write_sat_index(results / "sat_index.json", {str(track_audio): str(track_info),
                                                     str(weak_audio): str(results / "weak" / "weak.INFO"),
                                                     str(quiet_audio): str(results / "quiet" / "quiet.INFO")},
                       inputs)
    config = results / "sat_config.json"
    config.write_text(json.dumps({"index": "sat_index.json", "template": TEMPLATE, "dropout": 0,
                                  "number_keys": ["bpm", "lufs"]}), encoding="utf-8")
    monkeypatch.setenv(sat.CONFIG_ENV, str(config))
    return {"track": track_audio, "weak": weak_audio, "quiet": quiet_audio, "crop": crop_audio,
            "stem": stem_audio, "results": results, "config": config}


def _load_like_sat():
    """Exactly how stable_audio_tools.data.dataset loads a custom_metadata_module."""
    spec = importlib.util.spec_from_file_location("metadata_module", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_custom_metadata


def test_sat_module_prompts_numbers_and_rejects(layout):
    get_custom_metadata = _load_like_sat()
    out = get_custom_metadata(_sat_info(layout["track"]), None)
    assert out == {"prompt": "Deep House, Techno, 124 BPM, A minor, by Sigur Ros", "bpm": 124.3, "lufs": -9.5}
    crop = get_custom_metadata(_sat_info(layout["crop"]), None)
    assert crop == {"prompt": "Deep House, Techno, 124 BPM, C major, by Sigur Ros", "bpm": 123.6, "lufs": -9.5}
    assert get_custom_metadata(_sat_info(layout["stem"]), None) == {"__reject__": True}
    assert get_custom_metadata(_sat_info(layout["weak"]), None) == {"__reject__": True}
    assert get_custom_metadata(_sat_info(layout["quiet"]), None) == {"__reject__": True}

    config = sat.load_config()
    assert sat.explain(str(layout["stem"]), config)[1] == "no .INFO found (not in the index, none beside the audio)"
    reason = sat.explain(str(layout["weak"]), config)[1]
    assert reason.startswith("bpm: bpm_is_defined = 0") and "missing required field(s): bpm: bpm_is_defined = 0" \
        in reason
    assert sat.explain(str(layout["quiet"]), config)[1] == "lufs: silent"


def test_sat_index_is_relative_and_follows_symlinks(layout, tmp_path):
    index = json.loads((layout["results"] / "sat_index.json").read_text(encoding="utf-8"))
    assert index["format"] == "mirflow-sat-index" and index["version"] == 2
    assert index["entries"] == {"Song/full_mix.flac": "Song/Song.INFO", "quiet.flac": "quiet/quiet.INFO",
                                "weak.flac": "weak/weak.INFO"}
    link = tmp_path / "linked_music"
    link.symlink_to(layout["track"].parent.parent)
    values, reason, info_path = sat.explain(str(link / "Song" / "full_mix.flac"), sat.load_config())
    assert reason is None and values["bpm"] == 124.3
    assert Path(info_path) == layout["results"] / "Song" / "Song.INFO"


def test_sat_finds_every_info_after_moving_the_music_and_the_results(layout, tmp_path, monkeypatch, capsys):
    moved = tmp_path / "training_machine"
    moved.mkdir()
    music = Path(shutil.move(str(layout["track"].parent.parent), moved / "music"))
    results = Path(shutil.move(str(layout["results"]), moved / "out"))
    monkeypatch.setenv(sat.CONFIG_ENV, str(results / "sat_config.json"))
    sat.main(["--config", str(results / "sat_config.json"), str(music)])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "1 used, 2 rejected"
    lines = {line[8:].split(": ", 1)[0]: line for line in out[:-1]}
    assert lines[str(music / "Song" / "full_mix.flac")].startswith("OK      ")
    # Rejected for their features, not because the .INFO was lost in the move.
    assert lines[str(music / "quiet.flac")].endswith(": lufs: silent")
    assert lines[str(music / "weak.flac")].endswith(": bpm: bpm_is_defined = 0; missing required field(s): bpm: "
                                                    "bpm_is_defined = 0")
    get_custom_metadata = _load_like_sat()
    # SAT's relpath is relative to the dataset path: the music folder, a folder above it or one inside it.
    assert get_custom_metadata({**_sat_info(music / "Song" / "full_mix.flac"), "relpath": "Song/full_mix.flac"},
                               None)["bpm"] == 124.3
    assert get_custom_metadata({**_sat_info(music / "Song" / "full_mix.flac"), "relpath": "full_mix.flac"},
                               None)["bpm"] == 124.3
    assert get_custom_metadata(_sat_info(results / "Song" / "crops" / "Song_1.flac"), None)["bpm"] == 123.6


def test_sat_results_follow_changed_info_files(layout):
    info_path = layout["results"] / "Song" / "crops" / "Song_1.INFO"
    get_custom_metadata = _load_like_sat()
    assert get_custom_metadata(_sat_info(layout["crop"]), None)["bpm"] == 123.6
    _info_file(info_path, {**TRACK_INFO, "bpm": 99.0})
    os.utime(info_path, ns=(1, 1))  # a different stamp even within one clock tick
    assert get_custom_metadata(_sat_info(layout["crop"]), None)["bpm"] == 99.0


def test_sat_config_rejects_unknown_keys_and_bad_templates(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"templte": "{bpm}"}), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown key"):
        sat.load_config(str(cfg))
    cfg.write_text(json.dumps({"template": "[{bpm} [{key}]]"}), encoding="utf-8")
    with pytest.raises(TemplateError, match="nested"):
        sat.load_config(str(cfg))


def test_sat_defaults_without_config(tmp_path, monkeypatch):
    monkeypatch.delenv(sat.CONFIG_ENV, raising=False)
    audio = _audio(tmp_path / "crops" / "x_1.flac")
    _info_file(tmp_path / "crops" / "x_1.INFO", {**TRACK_INFO, "caption_feature_sentence": "A dark deep house track"})
    full = "A dark deep house track. Deep House, Techno, dark, energetic, synthesizer, drummachine, 124 BPM, A minor"
    assert sat.explain(str(audio))[0] == {"prompt": full}
    # In training each sample draws which parts appear (default dropout 0.3), reproducibly.
    draws = [_load_like_sat()({**_sat_info(audio), "seconds_start": t}, None)["prompt"] for t in range(40)]
    assert draws == [_load_like_sat()({**_sat_info(audio), "seconds_start": t}, None)["prompt"] for t in range(40)]
    assert full in draws and len(set(draws)) > 10


def test_sat_check_command(layout, capsys):
    sat.main([str(layout["results"] / "Song" / "crops")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("OK      ") and out[0].endswith(
        '"prompt": "Deep House, Techno, 124 BPM, C major, by Sigur Ros", "bpm": 123.6, "lufs": -9.5}')
    assert out[1].startswith("REJECT  ") and "Song_1_drums.flac" in out[1]
    assert out[2] == "1 used, 1 rejected"


def test_sat_function_survives_dill_like_sat_workers(layout):
    dill = pytest.importorskip("dill")  # Stable Audio Tools ships its metadata function to workers with dill
    fn = dill.loads(dill.dumps(_load_like_sat()))
    assert fn(_sat_info(layout["track"]), None)["bpm"] == 124.3


# --------------------------------------------------------------------------- template engine

def test_template_optional_parts_and_tidy_separators():
    info = {"bpm": 120.0, "key": "F\u266f minor", "_provenance": {"absent": {"track_metadata_artist": "no artist tag"}}}
    assert build_prompt(info, {"template": TEMPLATE}) == ("120 BPM, F\u266f minor", None)
    assert build_prompt(info, {"template": "[{genres}, ][{key}]"})[0] == "F\u266f minor"
    prompt, reason = build_prompt(info, {"template": "{track_metadata_artist}: {bpm:.0f}"})
    assert prompt is None and reason == "missing required field(s): track_metadata_artist: no artist tag"
    assert build_prompt({}, {"template": "[{genres}]"}) == (
        None, "empty prompt (no field of the template is available)")
    assert build_prompt({"a": "x"}, {"template": "[[{a}]] \u201cq\u201d"})[0] == '[x] "q"'
    with pytest.raises(TemplateError, match="cannot format"):
        build_prompt({"key": "A minor"}, {"template": "{key:.0f}"})
    for bad, message in (("[{a}", "unclosed"), ("{a}]", "without"), ("{a.b}", "plain key"), ("{a", "braces")):
        with pytest.raises(TemplateError, match=message):
            parse_template(bad)


def test_labels_and_conditioning_numbers():
    assert top_labels(TRACK_INFO["essentia_genre"], 0.1, 3) == ["Deep House", "Techno"]
    assert top_labels(TRACK_INFO["essentia_genre"], 0.0, 2, style="full") == ["Electronic - Deep House",
                                                                              "Electronic - Techno"]
    assert top_labels({"b": 0.5, "a": 0.5, "c": True}, 0.1, 5) == ["a", "b"]
    values, reason = conditioning(TRACK_INFO, {"template": "{moods}", "number_keys": ["lufs"],
                                               "required_keys": ["key"]})
    assert values == {"prompt": "dark, energetic", "lufs": -9.5} and reason is None
    values, reason = conditioning({**TRACK_INFO, "lufs": "loud"}, {"template": "{key}", "number_keys": ["lufs"]})
    assert values is None and reason == "lufs: not a number ('loud')"
    values, reason = conditioning(TRACK_INFO, {"template": "{key}", "required_keys": ["essentia_voice"]})
    assert values is None and reason == "essentia_voice: not in the .INFO"


# --------------------------------------------------------------------------- AudioCraft

def test_musicinfo_fields():
    info = {**TRACK_INFO, "track_metadata_genre": "Post\u2011Rock"}
    assert musicinfo_from_info(info) == {
        "title": "Hoppipolla -- live", "artist": "Sigur Ros", "key": "A minor", "bpm": 124.3,
        "genre": "Deep House", "moods": ["dark", "energetic"], "keywords": ["Deep House", "Techno"],
        "description": "Deep House, Techno, dark, energetic, synthesizer, drummachine, 124 BPM, A minor",
        "name": None, "instrument": "synthesizer, drummachine"}
    sparse = musicinfo_from_info({"bpm": 100.0, "bpm_is_defined": 0, "track_metadata_genre": "Post\u2011Rock"})
    assert sparse == {"title": None, "artist": None, "key": None, "bpm": None, "genre": "Post-Rock", "moods": None,
                      "keywords": None, "description": None, "name": None, "instrument": None}


def test_audiocraft_sidecars_beside_crops(layout):
    results = layout["results"]
    (results / "Song" / "crops" / "Song_2.INFO").write_text(json.dumps(TRACK_INFO), encoding="utf-8")  # no audio
    written, skipped = write_crop_sidecars(results)
    sidecar = results / "Song" / "crops" / "Song_1.json"
    assert written == [sidecar]
    assert skipped == [{"info": str(results / "Song" / "crops" / "Song_2.INFO"),
                        "reason": "no crop audio beside the .INFO"}]
    data = json.loads(sidecar.read_text(encoding="utf-8"))
    assert tuple(data) == MUSICINFO_FIELDS  # every field present: MusicDataset requires them by default
    assert data["name"] == "Song_1" and data["bpm"] == 123.6 and data["key"] == "C major"
    assert not (layout["track"].parent / "full_mix.json").exists()  # nothing written into the input folder


# --------------------------------------------------------------------------- prompt dropout

DROPOUT_INFO = {**TRACK_INFO, "caption_feature_sentence": "A dark deep house track at 124 BPM in A minor.",
                "caption_feature_detailed": "Deep house with synthesizer. It is dark and energetic.",
                "musicnn_tags": {"electronic": 0.8, "dance": 0.4}}
DROPOUT_PARTS = {"caption": ("A dark deep house track at 124 BPM in A minor.",
                             "Deep house with synthesizer. It is dark and energetic."),
                 "genres": ("Deep House, Techno",), "moods": ("dark, energetic",),
                 "instruments": ("synthesizer, drummachine",), "tags": ("electronic, dance",),
                 "bpm": ("124 BPM",), "key": ("A minor",)}


def _parts_of(prompt: str) -> dict[str, str]:
    """Which part of DROPOUT_PARTS each piece of a default-template prompt is (caption first, then ", " list)."""
    found = {}
    for caption in DROPOUT_PARTS["caption"]:
        if prompt.startswith(caption):
            found["caption"] = caption
            prompt = prompt[len(caption):].strip()
    for name, (text,) in [(k, v) for k, v in DROPOUT_PARTS.items() if k != "caption"]:
        if prompt.startswith(text):
            found[name] = text
            prompt = prompt[len(text):].lstrip(", ")
    assert prompt == "", f"unexplained rest {prompt!r}"  # nothing but the .INFO's own facts, in template order
    return found


def test_prompt_dropout_draws_each_fact_with_its_probability_and_never_invents_one():
    from mirflow.exports.prompt import DEFAULT_PARAMS, sample_rng

    n = 4000
    seen = dict.fromkeys(DROPOUT_PARTS, 0)
    captions = dict.fromkeys(DROPOUT_PARTS["caption"], 0)
    for i in range(n):
        prompt, reason = build_prompt(DROPOUT_INFO, {"dropout": 0.3}, sample_rng(7, f"track_{i}.flac", 0.0))
        assert reason is None and prompt
        for name, text in _parts_of(prompt).items():
            seen[name] += 1
            if name == "caption":
                captions[text] += 1
    # Each part is kept with probability 0.7 (plus the rare all-dropped draw, 0.3^7, that keeps one): 4 sigma.
    sigma = (0.7 * 0.3 / n) ** 0.5
    for name, count in seen.items():
        assert abs(count / n - 0.7) < 4 * sigma + 0.001, (name, count)
    assert abs(captions[DROPOUT_PARTS["caption"][0]] / seen["caption"] - 0.5) < 0.05  # both captions, evenly
    assert DEFAULT_PARAMS["dropout"] == 0.3
    assert _parts_of(build_prompt(DROPOUT_INFO)[0]) == {k: v[0] for k, v in DROPOUT_PARTS.items()}  # no rng: all


def test_prompt_dropout_is_reproducible_and_absent_facts_never_appear():
    from mirflow.exports.prompt import sample_rng

    sparse = {"bpm": 124.3, "bpm_is_defined": 0, "essentia_mood": {"dark": 0.9}, "_provenance": {}}
    draws = [build_prompt(sparse, {"dropout": 0.5}, sample_rng(1, "a.flac", t))[0] for t in range(200)]
    assert set(draws) == {"dark"}  # the only fact: never dropped to an empty prompt; the undefined tempo never
    a = [build_prompt(DROPOUT_INFO, {}, sample_rng(3, "a.flac", t))[0] for t in range(50)]
    assert a == [build_prompt(DROPOUT_INFO, {}, sample_rng(3, "a.flac", t))[0] for t in range(50)]
    assert a != [build_prompt(DROPOUT_INFO, {}, sample_rng(4, "a.flac", t))[0] for t in range(50)]
    # Per-field probabilities: the key always, the caption never.
    for t in range(100):
        prompt = build_prompt(DROPOUT_INFO, {"dropout": {"caption": 1.0, "key": 0.0, "default": 0.5}},
                              sample_rng(0, "b.flac", t))[0]
        assert prompt.endswith("A minor") and "caption" not in _parts_of(prompt)
    with pytest.raises(TemplateError, match="probability"):
        build_prompt(DROPOUT_INFO, {"dropout": 1.5}, sample_rng(0, "b.flac", 0))


def test_audiocraft_manifest_lists_exactly_the_files_with_a_sidecar(layout, tmp_path):
    import gzip

    from mirflow.exports.audiocraft import main as audiocraft_main

    results = layout["results"]
    out = results / "audiocraft" / "data.jsonl.gz"
    assert audiocraft_main([str(results), "--manifest", str(out)]) == 0
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    # The crop mix (it has Song_1.json); not its stem Song_1_drums.flac, not the input tracks (no sidecar).
    assert rows == [{"path": str(layout["crop"].resolve()), "duration": 0.1, "sample_rate": 44100,
                     "amplitude": None, "weight": None, "info_path": None}]
    # AudioCraft's AudioMeta fields, in its order (audiocraft/data/audio_dataset.py).
    assert list(rows[0]) == ["path", "duration", "sample_rate", "amplitude", "weight", "info_path"]
    first = out.read_bytes()
    audiocraft_main([str(results), "--manifest", str(out)])
    assert out.read_bytes() == first  # reproducible: no timestamp in the gzip header


def test_one_label_ranking_for_classifiers_caption_facts_and_prompts():
    """Equal probabilities (e.g. after rounding) rank alphabetically wherever labels are ranked."""
    import numpy as np

    from mirflow.captions.facts import top_labels as fact_labels
    from mirflow.classifiers import top_labels as head_labels
    from mirflow.labels import rank_labels

    names = ["Rock---Punk", "Electronic---Techno", "Electronic---House", "Jazz---Swing"]
    probs = [0.3, 0.5, 0.5, 0.05]
    stored = head_labels(np.array(probs), names, 0.1, 10, 4)
    assert list(stored) == ["Electronic---House", "Electronic---Techno", "Rock---Punk"]  # not model output order
    assert [label for label, _ in fact_labels(stored, 0.1, 3)] == list(stored)
    assert top_labels(stored, 0.1, 3, style="full") == ["Electronic - House", "Electronic - Techno", "Rock - Punk"]
    assert rank_labels({"non_happy": 0.9, "happy": 0.2, "x": float("nan"), "y": True}, 0.1, 5,
                       drop_negative=True) == [("happy", 0.2)]


def test_the_corpus_track_list_pairs_each_info_with_its_crop_folder():
    from mirflow.jobs import corpus_tracks_table

    infos = ["results/a/t1/t1.INFO", "results/Café, The/x/x.INFO"]
    assert corpus_tracks_table(infos, ["results/a/t1/crops", "results/Café, The/x/crops"]) == (
        "info\tcrops\nresults/a/t1/t1.INFO\tresults/a/t1/crops\n"
        "results/Café, The/x/x.INFO\tresults/Café, The/x/crops\n")
    assert corpus_tracks_table(infos, []) == "info\tcrops\nresults/a/t1/t1.INFO\t\nresults/Café, The/x/x.INFO\t\n"
    with pytest.raises(ValueError, match="2 .INFO files but 1 crop folders"):
        corpus_tracks_table(infos, ["results/a/t1/crops"])
