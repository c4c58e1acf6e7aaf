"""The start-up report: one aligned row per model with its status, skipped families counted per reason."""
from types import SimpleNamespace

from mirflow.summary import startup_report


def test_startup_report_aligns_long_model_names_and_counts_skipped_families():
    tracks = [SimpleNamespace(id="a", stems={}, notes=[]), SimpleNamespace(id="b", stems={"bass": "x"}, notes=[])]
    models = [
        ("essentia_tonal_atonal_musicnn", ["essentia/tonal_atonal-msd-musicnn-1.pb", "essentia/x.json"],
         ["classifiers (optional)"]),
        ("adtof_frame_rnn", [], ["drums"]),
        ("audiobox_aesthetics", [], ["aesthetics"], True),
    ]
    missing = {"a": {"aesthetics": "model missing"}, "b": {"aesthetics": "model missing", "rhythm_stems": "no stems"}}
    text = startup_report("music", "results", tracks, missing, models)
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("    ") and "needed by" in line}
    assert rows["essentia_tonal_atonal_musicnn"].endswith(
        "MISSING models/essentia/tonal_atonal-msd-musicnn-1.pb (+1 more); needed by: classifiers (optional)")
    assert "ok (UNPINNED" in rows["audiobox_aesthetics"] and rows["adtof_frame_rnn"].split()[1] == "ok;"
    # The status column starts at the same place on every row, whatever the name's length.
    starts = {len(line) - len(line[4 + len(name):].lstrip()) for name, line in rows.items()}
    assert starts == {4 + len("essentia_tonal_atonal_musicnn") + 1}
    assert "2 track(s): model missing" in text and "1 track(s): no stems" in text
    assert text.splitlines()[0] == "mirflow: 2 track(s) under 'music' (1 with provided stems); results in 'results'"
