"""Corpus statistics: rows aligned by file with sparse keys, known statistics, outliers with their files."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from mirflow.stats import (
    build_table,
    categorical_summary,
    describe_numeric,
    find_info_files,
    load_records,
    pairwise_pearson,
    summarise,
    table_csv_text,
    write_outputs,
)


def write_info(root: Path, track_id: str, values: dict, absent: dict | None = None, missing: dict | None = None,
               families: tuple[str, ...] = ()) -> Path:
    """A .INFO as the merge writes it: ``<root>/<id>/<name>.INFO`` with a ``_provenance`` block."""
    name = track_id.rsplit("/", 1)[-1]
    path = root / track_id / f"{name}.INFO"
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = {"track_id": track_id, "families": {f: {"version": 1} for f in families},
            "missing_families": missing or {}, "absent": absent or {}, "warnings": []}
    path.write_text(json.dumps({**values, "_provenance": prov}), encoding="utf-8")
    return path


@pytest.fixture
def sparse(tmp_path):
    """Four tracks; x is missing in b, y in c, z only in c."""
    write_info(tmp_path, "a", {"x": 1.0, "y": 10.0})
    write_info(tmp_path, "b", {"y": 20.0}, absent={"x": "silent"})
    write_info(tmp_path, "c", {"x": 3.0, "z": "foo"}, absent={"y": "too short"})
    write_info(tmp_path, "d", {"x": 4.0, "y": 40.0})
    return tmp_path


def test_rows_are_aligned_by_file_with_sparse_keys(sparse):
    records, unreadable = load_records(sparse)
    assert unreadable == []
    table = build_table(records, catalogue=None)
    assert table.files == ["a/a.INFO", "b/b.INFO", "c/c.INFO", "d/d.INFO"]
    assert table.keys == ["x", "y", "z"]
    assert table.columns == {"x": [1.0, None, 3.0, 4.0], "y": [10.0, 20.0, None, 40.0],
                             "z": [None, None, "foo", None]}
    rows = list(csv.reader(io.StringIO(table_csv_text(table))))
    assert rows == [["file", "x", "y", "z"],
                    ["a/a.INFO", "1.0", "10.0", ""],
                    ["b/b.INFO", "", "20.0", ""],
                    ["c/c.INFO", "3.0", "", "foo"],
                    ["d/d.INFO", "4.0", "40.0", ""]]
    m = table.numeric(["x", "y"])
    np.testing.assert_array_equal(np.isnan(m), [[False, False], [True, False], [False, True], [False, False]])


def test_correlation_uses_only_files_having_both_keys(tmp_path):
    """y = 2x wherever both exist; one file has only y (1000), one only x (-50).

    Pairing by file gives r = 1 over the 4 common files. Pairing the present values in
    order (the old tool's lists) would pair x with another file's y and give r < 0.9.
    """
    xs = {"t1": 1.0, "t2": 2.0, "t4": 4.0, "t5": 5.0, "t6": -50.0}
    ys = {"t1": 2.0, "t2": 4.0, "t3": 1000.0, "t4": 8.0, "t5": 10.0}
    for t in ("t1", "t2", "t3", "t4", "t5", "t6"):
        values = {}
        if t in xs:
            values["x"] = xs[t]
        if t in ys:
            values["y"] = ys[t]
        write_info(tmp_path, t, values)
    records, _ = load_records(tmp_path)
    summary = summarise(records, params={"min_correlation_pairs": 3})
    corr = summary["correlation"]
    assert corr["keys"] == ["x", "y"]
    assert corr["matrix"][0][1] == pytest.approx(1.0, abs=1e-9)
    assert corr["n"][0][1] == 4
    assert corr["strongest"] == [{"a": "x", "b": "y", "r": 1.0, "n": 4}]
    misaligned = np.corrcoef(list(xs.values()), list(ys.values()))[0, 1]
    assert misaligned < 0.9  # what value-order pairing would have reported
    assert summary["numeric"]["y"]["max"] == 1000.0 and summary["numeric"]["y"]["count"] == 5


def test_known_statistics_and_outliers_name_their_files(tmp_path):
    values = [2, 4, 4, 4, 5, 5, 7, 9]
    for i, v in enumerate(values):
        write_info(tmp_path, f"track{i}", {"v": float(v)})
    write_info(tmp_path, "track8", {}, absent={"v": "silent"})
    write_info(tmp_path, "track9", {})
    records, _ = load_records(tmp_path)
    s = summarise(records)["numeric"]["v"]
    assert s["count"] == 8 and s["missing"] == 2
    assert s["mean"] == 5.0
    assert s["median"] == 4.5
    assert s["std"] == pytest.approx(np.sqrt(32 / 7))  # sample std (ddof = 1); population std is 2
    assert (s["min"], s["max"]) == (2.0, 9.0)
    assert (s["q1"], s["q3"], s["iqr"]) == (4.0, 5.5, 1.5)
    assert (s["low_fence"], s["high_fence"]) == (1.75, 7.75)
    assert s["outlier_count"] == 1
    assert s["outliers"] == [{"file": "track7/track7.INFO", "value": 9.0}]
    assert s["missing_reasons"] == {"no reason recorded": 1, "silent": 1}


def test_outliers_listed_most_extreme_first_and_capped():
    values = np.array([0.0] * 10 + [10.0, -30.0, 20.0, np.nan])
    files = [f"f{i}" for i in range(len(values))]
    s = describe_numeric(values, files, iqr_factor=1.5, max_listed=2)
    assert s["outlier_count"] == 3
    assert s["outliers"] == [{"file": "f11", "value": -30.0}, {"file": "f12", "value": 20.0}]
    assert s["missing"] == 1
    empty = describe_numeric(np.array([np.nan, np.nan]), ["a", "b"])
    assert empty["count"] == 0 and empty["mean"] is None and empty["outliers"] == []
    one = describe_numeric(np.array([3.0]), ["a"])
    assert one["std"] is None and one["median"] == 3.0


def test_pairwise_pearson_matches_numpy_per_pair():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(40, 4))
    m[:, 1] += 0.8 * m[:, 0]
    r, n = pairwise_pearson(m)
    np.testing.assert_allclose(r, np.corrcoef(m, rowvar=False), atol=1e-12)
    assert (n == 40).all()
    m[rng.random(m.shape) < 0.3] = np.nan
    m[:, 3] = 7.0  # constant: r undefined
    m[0, 3] = np.nan
    r, n = pairwise_pearson(m)
    for i in range(3):
        for j in range(3):
            both = ~np.isnan(m[:, i]) & ~np.isnan(m[:, j])
            assert n[i, j] == both.sum()
            assert r[i, j] == pytest.approx(np.corrcoef(m[both, i], m[both, j])[0, 1], abs=1e-12)
        assert np.isnan(r[i, 3]) and np.isnan(r[3, i])


def test_categorical_summaries():
    genres = [{"Electronic---House": 0.7, "Electronic---Techno": 0.2},
              {"Electronic---House": 0.5, "Rock---Punk": 0.9},   # 0.5 does not pass (> 0.5)
              None,
              {"Electronic---House": 0.51}]
    s = categorical_summary(genres, 0.5)
    assert s == {"type": "labels", "files": 3, "distinct": 2,
                 "counts": {"Electronic---House": 2, "Rock---Punk": 1}, "threshold": 0.5}
    keys = categorical_summary(["A minor", "C major", None, "A minor"], 0.5)
    assert keys == {"type": "string", "files": 3, "distinct": 2, "counts": {"A minor": 2, "C major": 1}}
    capped = categorical_summary(["x", "y", "y", "z", "w"], 0.5, max_categories=2)
    assert capped["counts"] == {"y": 2, "w": 1} and capped["distinct"] == 4  # ties in alphabetical order
    assert categorical_summary([{}, {"a": 0.9}], 0.5)["counts"] == {"a": 1}  # empty tag dict: no label passed
    lists = categorical_summary([["a", "b"], ["b", "b"], None], 0.5)
    assert lists["counts"] == {"b": 2, "a": 1}
    assert categorical_summary([1.0, None], 0.5) is None


def test_summary_units_from_catalogue_conflicts_and_absent_keys(tmp_path):
    write_info(tmp_path, "a", {"bpm": 120.0, "key": "A minor", "weird": 1.0, "essentia_genre": {"Rock---Punk": 0.8}},
               absent={"lufs": "silent"})
    write_info(tmp_path, "b", {"bpm": 90.0, "key": "C major", "weird": "text"}, absent={"lufs": "silent"})
    records, _ = load_records(tmp_path)
    s = summarise(records)
    assert s["numeric"]["bpm"]["unit"] == "BPM" and s["numeric"]["bpm"]["family"] == "rhythm"
    assert s["numeric"]["bpm"]["catalogued"] is True
    assert "weird" not in s["numeric"] and s["type_conflicts"] == {"weird": {"number": 1, "string": 1}}
    assert s["categorical"]["key"]["counts"] == {"A minor": 1, "C major": 1}
    assert s["categorical"]["essentia_genre"]["counts"] == {"Rock---Punk": 1}
    assert s["categorical"]["essentia_genre"]["missing_reasons"] == {"no reason recorded": 1}
    assert s["absent_everywhere"]["lufs"] == {"silent": 2}


def test_resolved_keys_count_their_sources_and_the_report_flags_a_mix(tmp_path):
    from mirflow.report import render_report

    for i, (source, value) in enumerate([("effnet_danceability", 0.8), ("effnet_danceability", 0.3),
                                         ("danceability_dfa", 0.45)]):
        path = write_info(tmp_path, f"t{i}", {"danceability": value, "bpm": 100.0 + i})
        info = json.loads(path.read_text())
        info["_provenance"]["resolved"] = {"danceability": {"source": source}}
        path.write_text(json.dumps(info))
    write_info(tmp_path, "t3", {"bpm": 90.0}, absent={"danceability": "no source has a value: ..."})
    records, _ = load_records(tmp_path)
    s = summarise(records)
    assert s["numeric"]["danceability"]["sources"] == {"effnet_danceability": 2, "danceability_dfa": 1}
    assert "sources" not in s["numeric"]["bpm"]
    html = render_report(s, records, build_table(records), [])
    assert "mixed sources: effnet_danceability 2, danceability_dfa 1" in html


def test_track_and_crop_files_are_told_apart(tmp_path):
    write_info(tmp_path, "album/song", {"x": 1.0})
    crops = tmp_path / "album" / "song" / "crops"
    crops.mkdir()
    (crops / "song_1.INFO").write_text(json.dumps({"x": 2.0}), encoding="utf-8")
    (crops / "song_2.INFO").write_text(json.dumps({"x": 3.0}), encoding="utf-8")
    (tmp_path / "stray.INFO").write_text("{}", encoding="utf-8")
    tracks, other = find_info_files(tmp_path, "tracks")
    crop_files, _ = find_info_files(tmp_path, "crops")
    assert [p.relative_to(tmp_path).as_posix() for p in tracks] == ["album/song/song.INFO"]
    assert [p.name for p in crop_files] == ["song_1.INFO", "song_2.INFO"]
    assert [p.name for p in other] == ["stray.INFO"]
    records, _ = load_records(tmp_path, "crops")
    assert [r.values["x"] for r in records] == [2.0, 3.0]


def test_write_outputs_strict_json_csv_and_report(sparse):
    bad = sparse / "e" / "e.INFO"
    bad.parent.mkdir()
    bad.write_text("{not json", encoding="utf-8")
    out = sparse / "stats"
    written = write_outputs(sparse, out)
    assert set(written) >= {"csv", "json", "html"}
    text = Path(written["json"]).read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    summary = json.loads(text)
    assert summary["files"] == 4
    assert summary["unreadable"][0]["file"] == "e/e.INFO"
    assert summary["numeric"]["x"]["count"] == 3
    assert Path(written["csv"]).read_text(encoding="utf-8").splitlines()[0] == "file,x,y,z"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert "parquet" not in written
    else:
        import pyarrow.parquet as pq

        tbl = pq.read_table(written["parquet"]).to_pydict()
        assert tbl["x"] == [1.0, None, 3.0, 4.0]
