"""Corpus statistics over the ``.INFO`` files of a results folder.

``python -m mirflow.stats RESULTS_DIR [--crops] [--out DIR] [--no-report]`` writes, into ``DIR``
(default ``RESULTS_DIR/stats``):

* ``features_<kind>.csv``: one row per ``.INFO`` file, one column per feature key (``file`` first:
  the .INFO path relative to the results folder). Empty cell = key absent in that file.
  Objects/arrays (``essentia_genre`` ...) are compact JSON text.
* ``features_<kind>.parquet``: the same table, when ``pyarrow`` is importable.
* ``stats_<kind>.json``: the summary described in :func:`summarise`.
* ``report_<kind>.html``: the HTML report (``mirflow.report``).

``kind`` is ``tracks`` (``<id>/<name>.INFO``: a .INFO inside a folder of its own name) or ``crops``
(``crops/<name>_<N>.INFO``).

Every value is kept with the file it came from: the table has one row per file, and each
statistic is computed from a column of that table (missing = NaN internally). Pairwise
correlations use only the files that have both keys. The old tool appended values to
per-key lists, so with sparse keys its correlations and outlier file names paired values
of different files; that cannot happen here.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from .catalogue import RESOLVED_FAMILY, Catalogue, load_catalogue
from .jsonio import read_json, write_json_atomic, write_text_atomic
from .provenance import absent_reason

#: Parameters of the statistics (JSON-able).
DEFAULT_PARAMS: dict[str, Any] = {
    "outlier_iqr_factor": 1.5,        # Tukey fences: below q1 - f*IQR or above q3 + f*IQR
    "max_listed_outliers": 100,       # per key; outlier_count is always exact
    "label_threshold": 0.5,           # a label of a tag dictionary "passes" when its probability is > this
    "max_categories": 200,            # per non-numeric key, the most frequent values kept (free text is unique)
    "min_correlation_pairs": 5,       # files needing both keys before a Pearson r is reported
    "strong_correlation": 0.7,        # |r| at or above this counts as a strong pair
    "top_correlation_pairs": 30,      # strongest pairs listed
}

PROVENANCE = "_provenance"
#: A string column whose values have more words than this (median) is free text, not a category.
TEXT_MIN_WORDS = 4
_CROP_STEM = re.compile(r".+_\d+$")
CROPS_DIRNAME = "crops"


# --------------------------------------------------------------------------- loading

@dataclass
class InfoRecord:
    """One parsed .INFO file.

    Attributes
    ----------
    file : str
        The .INFO path relative to the results folder (POSIX), unique per file.
    values : dict
        Feature key -> value (everything but ``_provenance``).
    provenance : dict
        The file's ``_provenance`` block (empty when it has none).
    """

    file: str
    values: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def track_id(self) -> str:
        return str(self.provenance.get("track_id") or self.file.rsplit("/", 1)[0])


def info_kind(path: Path) -> str:
    """``"track"`` for ``<name>/<name>.INFO``, ``"crop"`` for ``crops/<name>_<N>.INFO``, else ``"other"``."""
    if path.parent.name == path.stem:
        return "track"
    if path.parent.name == CROPS_DIRNAME and _CROP_STEM.match(path.stem):
        return "crop"
    return "other"


def find_info_files(results_dir: str | os.PathLike, kind: str = "tracks") -> tuple[list[Path], list[Path]]:
    """The .INFO files of one kind under ``results_dir`` (sorted), and the .INFO files of neither kind."""
    if kind not in ("tracks", "crops"):
        raise ValueError(f"kind must be 'tracks' or 'crops', not {kind!r}")
    wanted = kind[:-1]
    chosen, other = [], []
    for path in sorted(Path(results_dir).glob("**/*.INFO")):
        k = info_kind(path)
        if k == wanted:
            chosen.append(path)
        elif k == "other":
            other.append(path)
    return chosen, other


def load_records(results_dir: str | os.PathLike, kind: str = "tracks"
                 ) -> tuple[list[InfoRecord], list[dict[str, str]]]:
    """Parse every .INFO of ``kind``.

    Returns
    -------
    records : list of InfoRecord
        In path order.
    unreadable : list of dict
        ``{"file", "reason"}`` for files that are not a JSON object (they are left out, never guessed).
    """
    root = Path(results_dir)
    paths, _ = find_info_files(root, kind)
    records, unreadable = [], []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        try:
            data = read_json(path)
        except (OSError, ValueError) as err:
            unreadable.append({"file": rel, "reason": f"{type(err).__name__}: {err}"})
            continue
        if not isinstance(data, dict):
            unreadable.append({"file": rel, "reason": f"top level is a {type(data).__name__}, not an object"})
            continue
        prov = data.get(PROVENANCE)
        values = {k: v for k, v in data.items() if k != PROVENANCE}
        records.append(InfoRecord(rel, values, prov if isinstance(prov, dict) else {}))
    return records, unreadable


# --------------------------------------------------------------------------- the table

def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_type(value: Any) -> str:
    """``number``, ``string``, ``labels`` (dict of label -> number), ``object``, ``list`` or ``bool``."""
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        # An empty dict is a tag dictionary with no label above the classifier's cut-off.
        return "labels" if all(_is_number(v) for v in value.values()) else "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def ordered_keys(records: list[InfoRecord], catalogue: Catalogue | None = None) -> list[str]:
    """Every key seen in any record: catalogue order first, then uncatalogued keys alphabetically."""
    seen: set[str] = set()
    for rec in records:
        seen.update(rec.values)
    cat_order = [k for k in (catalogue.keys() if catalogue else []) if k in seen]
    return cat_order + sorted(seen - set(cat_order))


@dataclass
class FeatureTable:
    """Feature values with one row per file: ``columns[key][i]`` belongs to ``files[i]`` (None = absent)."""

    files: list[str]
    keys: list[str]
    columns: dict[str, list[Any]]

    def numeric(self, keys: list[str]) -> np.ndarray:
        """float64 matrix (files x keys); NaN where a file lacks the key or it is not a number."""
        out = np.full((len(self.files), len(keys)), np.nan)
        for j, key in enumerate(keys):
            for i, value in enumerate(self.columns[key]):
                if _is_number(value):
                    out[i, j] = float(value)
        return out


def build_table(records: list[InfoRecord], catalogue: Catalogue | None = None) -> FeatureTable:
    """One row per record; a key a record lacks is None in that row (never a value of another file)."""
    keys = ordered_keys(records, catalogue)
    columns = {key: [rec.values.get(key) for rec in records] for key in keys}
    return FeatureTable([rec.file for rec in records], keys, columns)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if isinstance(value, float):
        return repr(value)
    return value


def table_csv_text(table: FeatureTable) -> str:
    """The table as CSV text (header ``file,<keys...>``)."""
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", *table.keys])
    for i, name in enumerate(table.files):
        writer.writerow([name, *(_cell(table.columns[k][i]) for k in table.keys)])
    return buf.getvalue()


def write_table_parquet(table: FeatureTable, path: str | os.PathLike) -> bool:
    """Write the table as Parquet when pyarrow is importable; returns whether it was written.

    Numeric columns become float64 (int64 when every value is an integer), strings stay strings,
    objects/arrays and columns of mixed types become JSON/text. Absent values are nulls.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    arrays = {"file": pa.array(table.files, type=pa.string())}
    for key in table.keys:
        col = table.columns[key]
        types = {value_type(v) for v in col if v is not None}
        if types == {"number"}:
            if all(isinstance(v, int) for v in col if v is not None):
                arrays[key] = pa.array(col, type=pa.int64())
            else:
                arrays[key] = pa.array([None if v is None else float(v) for v in col], type=pa.float64())
        elif types == {"string"}:
            arrays[key] = pa.array(col, type=pa.string())
        else:
            arrays[key] = pa.array([None if v is None else (v if isinstance(v, str) else _cell(v)) for v in col],
                                   type=pa.string())
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    pq.write_table(pa.table(arrays), tmp)
    os.replace(tmp, path)
    return True


# --------------------------------------------------------------------------- statistics

def _float(x: float) -> float | None:
    """A statistic for JSON: None when undefined (NaN), else a plain float."""
    return None if x is None or not math.isfinite(x) else float(x)


def describe_numeric(values: np.ndarray, files: list[str], iqr_factor: float = 1.5,
                     max_listed: int = 100) -> dict[str, Any]:
    """Summary statistics of one numeric column.

    Parameters
    ----------
    values : np.ndarray
        float64, one entry per file, NaN where the file lacks the key.
    files : list of str
        The file of each entry (same order as ``values``).
    iqr_factor : float
        Tukey fence factor: outliers lie below ``q1 - f*IQR`` or above ``q3 + f*IQR``.
    max_listed : int
        At most this many outliers are listed (the most extreme first); ``outlier_count`` is exact.

    Returns
    -------
    dict
        ``count``, ``missing``, ``mean``, ``median``, ``std`` (sample standard deviation, ddof = 1;
        None for fewer than 2 values), ``min``, ``max``, ``q1``, ``q3`` (linear-interpolation
        percentiles 25 and 75), ``iqr``, ``low_fence``, ``high_fence``, ``outlier_count`` and
        ``outliers`` (list of ``{"file", "value"}``). Statistics of an empty column are None.
    """
    if len(values) != len(files):
        raise ValueError(f"{len(values)} values for {len(files)} files")
    present = ~np.isnan(values)
    x = values[present]
    out: dict[str, Any] = {"count": int(x.size), "missing": int(values.size - x.size)}
    if x.size == 0:
        out.update(dict.fromkeys(("mean", "median", "std", "min", "max", "q1", "q3", "iqr", "low_fence", "high_fence")))
        out.update(outlier_count=0, outliers=[])
        return out
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    iqr = q3 - q1
    low, high = q1 - iqr_factor * iqr, q3 + iqr_factor * iqr
    out.update(mean=_float(np.mean(x)), median=_float(median),
               std=_float(np.std(x, ddof=1)) if x.size > 1 else None,
               min=_float(np.min(x)), max=_float(np.max(x)), q1=_float(q1), q3=_float(q3), iqr=_float(iqr),
               low_fence=_float(low), high_fence=_float(high))
    idx = np.flatnonzero(present & ((values < low) | (values > high)))
    distance = np.maximum(low - values[idx], values[idx] - high)
    order = idx[np.argsort(-distance, kind="stable")]
    out["outlier_count"] = int(idx.size)
    out["outliers"] = [{"file": files[i], "value": float(values[i])} for i in order[:max_listed]]
    return out


def pairwise_pearson(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of every pair of columns over the rows where both are present.

    Parameters
    ----------
    matrix : np.ndarray
        float64 (rows x columns), NaN = missing.

    Returns
    -------
    r : np.ndarray
        (columns x columns) correlation; NaN where fewer than 2 common rows or a column is
        constant over the common rows.
    n : np.ndarray
        int (columns x columns): number of rows where both columns are present.
    """
    present = ~np.isnan(matrix)
    m = present.astype(np.float64)
    counts = m.sum(axis=0)
    means = np.where(counts > 0, np.where(present, matrix, 0.0).sum(axis=0) / np.maximum(counts, 1), 0.0)
    # Centre each column on its overall mean first so the sums below do not cancel catastrophically.
    x = np.where(present, matrix - means, 0.0)
    n = m.T @ m
    sx = x.T @ m            # sx[i, j]: sum of column i over the rows where column j is present too
    sxx = (x * x).T @ m
    sxy = x.T @ x
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sx.T / n
        var_i = sxx - sx * sx / n
        var_j = var_i.T
        r = cov / np.sqrt(var_i * var_j)
    # A column constant over the common rows has (up to rounding) zero variance there: r is undefined.
    degenerate = (n < 2) | (var_i <= 1e-12 * sxx) | (var_j <= 1e-12 * sxx.T)
    # Rounding can push |r| a hair past 1 for exactly collinear columns.
    r = np.where(degenerate, np.nan, np.clip(r, -1.0, 1.0))
    return r, n.astype(int)


def strongest_pairs(keys: list[str], r: np.ndarray, n: np.ndarray, min_pairs: int, top: int
                    ) -> list[dict[str, Any]]:
    """The ``top`` key pairs with the largest |r| (each pair once, ``a`` before ``b`` in ``keys`` order)."""
    pairs = []
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            if n[i, j] >= min_pairs and math.isfinite(r[i, j]):
                pairs.append((abs(r[i, j]), i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [{"a": keys[i], "b": keys[j], "r": round(float(r[i, j]), 4), "n": int(n[i, j])}
            for _, i, j in pairs[:top]]


def categorical_summary(column: list[Any], label_threshold: float, max_categories: int = 200
                        ) -> dict[str, Any] | None:
    """Counts for a non-numeric column, or None when it is numeric/empty.

    Tag dictionaries (``{label: probability}``): per label, the number of files where the
    probability is > ``label_threshold``. Strings: files per value. Lists: files per element.
    ``counts`` keeps the ``max_categories`` most frequent values (ties alphabetical);
    ``distinct`` is the number of distinct values before that cut.

    Two kinds are not categories and have no ``counts``: ``number_list`` (lists of numbers, e.g. a
    crop's beat times in s) gives ``lengths`` (:func:`describe_numeric` of the values per file without
    outliers); ``text`` (strings of more than :data:`TEXT_MIN_WORDS` words at the median, e.g.
    captions) gives ``median_words`` and ``example`` (the first value).
    """
    present = [v for v in column if v is not None]
    types = {value_type(v) for v in present}
    if not present or types <= {"number"}:
        return None
    counts: Counter = Counter()
    if types <= {"list"} and all(_is_number(x) for items in present for x in items):
        lengths = np.array([len(items) for items in present], dtype=float)
        stats = describe_numeric(lengths, [""] * len(present))
        stats = {k: v for k, v in stats.items() if k not in ("outliers", "outlier_count", "low_fence", "high_fence")}
        return {"type": "number_list", "files": len(present), "distinct": 0, "counts": {}, "lengths": stats}
    if types <= {"string"}:
        words = float(np.median([len(v.split()) for v in present]))
        if words > TEXT_MIN_WORDS:
            return {"type": "text", "files": len(present), "distinct": len(set(present)), "counts": {},
                    "median_words": words, "example": present[0]}
    if types <= {"labels"}:
        for d in present:
            counts.update(label for label, p in d.items() if p > label_threshold)
        kind = "labels"
    elif types <= {"string", "bool"}:
        counts.update(str(v) for v in present)
        kind = "string"
    elif types <= {"list"}:
        for items in present:
            counts.update({json.dumps(x, ensure_ascii=False) if not isinstance(x, str) else x for x in items})
        kind = "list"
    else:
        return {"type": "mixed", "files": len(present), "types": sorted(types), "distinct": 0, "counts": {}}
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = {"type": kind, "files": len(present), "distinct": len(ranked), "counts": dict(ranked[:max_categories])}
    if kind == "labels":
        out["threshold"] = label_threshold
    return out


def missing_reasons(records: list[InfoRecord], key: str) -> dict[str, int]:
    """Why files lack ``key``: their ``_provenance.absent`` reasons, counted (``"no reason recorded"`` else)."""
    reasons: Counter = Counter()
    for rec in records:
        if key in rec.values:
            continue
        reasons[absent_reason(rec.provenance, key) or "no reason recorded"] += 1
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def resolved_sources(records: list[InfoRecord], key: str) -> dict[str, int]:
    """Which source gave a resolved key (``_provenance.resolved``), counted over the files that have the key.

    More than one source means the corpus mixes model and classic values under one key (see mirflow.resolved).
    """
    sources: Counter = Counter()
    for rec in records:
        if key in rec.values:
            entry = (rec.provenance.get("resolved") or {}).get(key) or {}
            sources[entry.get("source") or "not recorded"] += 1
    return dict(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0])))


def audio_totals(records: list[InfoRecord]) -> dict[str, Any]:
    """Total audio duration and files per source format.

    Returns
    -------
    dict
        ``duration_s`` (sum over the files with a duration, s: a track's ``duration_s``, a crop's
        ``duration``), ``files_with_duration``, ``formats`` (``codec`` of the input file -> files, most
        first; ``"unknown"`` without one).
    """
    total, counted, formats = 0.0, 0, Counter[str]()
    for rec in records:
        duration = rec.values.get("duration" if "crop_index" in rec.provenance else "duration_s")
        if _is_number(duration) and math.isfinite(duration):
            total += float(duration)
            counted += 1
        codec = rec.values.get("codec")
        formats[codec if isinstance(codec, str) and codec else "unknown"] += 1
    return {"duration_s": round(total, 3), "files_with_duration": counted,
            "formats": dict(sorted(formats.items(), key=lambda kv: (-kv[1], kv[0])))}


def family_timing(results_dir: str | os.PathLike) -> dict[str, Any]:
    """Where the time went: wall time per family from every partial JSON's ``_meta.wall_time_s``.

    Reads ``<track>/features/<family>.json`` (also of tracks whose .INFO was not written) and the
    separation record ``<track>/stems/separation.json`` (step ``separate_stems``).

    Returns
    -------
    dict
        ``families``: family -> ``{"jobs", "total_s", "mean_s", "max_s", "slowest"}`` (``slowest``: the
        track of the longest job), largest total first; ``total_s``: their sum (s of job time: jobs that
        ran in parallel count each).
    """
    root = Path(results_dir)
    times: dict[str, list[tuple[float, str]]] = {}
    for path in sorted(root.glob("**/features/*.json")) + sorted(root.glob("**/stems/separation.json")):
        try:
            data = read_json(path)
        except (OSError, ValueError):
            continue
        meta = data.get("_meta", data) if isinstance(data, dict) else {}
        seconds = meta.get("wall_time_s") if isinstance(meta, dict) else None
        if not _is_number(seconds):
            continue
        family = meta.get("family") if path.parent.name == "features" else "separate_stems"
        track = path.parent.parent.relative_to(root).as_posix()
        times.setdefault(str(family or path.stem), []).append((float(seconds), track))
    families: dict[str, dict[str, Any]] = {}
    for family, runs in times.items():
        slowest = max(runs)
        total = sum(s for s, _ in runs)
        families[family] = {"jobs": len(runs), "total_s": round(total, 3), "mean_s": round(total / len(runs), 3),
                            "max_s": round(slowest[0], 3), "slowest": slowest[1]}
    ordered = dict(sorted(families.items(), key=lambda kv: (-kv[1]["total_s"], kv[0])))
    return {"families": ordered, "total_s": round(sum(f["total_s"] for f in ordered.values()), 3)}


def _entry_facts(catalogue: Catalogue, key: str) -> dict[str, Any]:
    if key in catalogue:
        e = catalogue.entry(key)
        return {"unit": e.unit, "family": e.family, "description": e.description, "catalogued": True}
    return {"unit": None, "family": None, "description": None, "catalogued": False}


def numeric_keys(table: FeatureTable) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Keys whose present values are all numbers, and keys mixing numbers with other types."""
    numeric, conflicts = [], {}
    for key in table.keys:
        types = Counter(value_type(v) for v in table.columns[key] if v is not None)
        if set(types) == {"number"}:
            numeric.append(key)
        elif "number" in types:
            conflicts[key] = dict(types)
    return numeric, conflicts


def summarise(records: list[InfoRecord], catalogue: Catalogue | None = None,
              params: dict[str, Any] | None = None, table: FeatureTable | None = None) -> dict[str, Any]:
    """The corpus summary (JSON-able, strict: undefined statistics are None).

    Returns
    -------
    dict
        ``files`` (count); ``numeric``: key -> :func:`describe_numeric` plus ``unit``, ``family``,
        ``description`` (from the catalogue) and ``missing_reasons`` (resolved keys also ``sources``:
        source key -> file count); ``categorical``: key ->
        :func:`categorical_summary` plus catalogue facts and ``missing``; ``correlation``: ``keys``,
        ``matrix`` (r rounded to 4 decimals, None where undefined), ``n`` (common files per pair),
        ``strongest`` (pairs by |r|), ``strong_count`` (pairs with |r| >= ``strong_correlation``);
        ``type_conflicts``; ``absent_everywhere``: catalogued keys no file has, with reason counts;
        ``audio``: :func:`audio_totals`. (:func:`write_outputs` adds ``timing``: :func:`family_timing`.)
    """
    cat = catalogue or load_catalogue()
    p = {**DEFAULT_PARAMS, **(params or {})}
    table = table or build_table(records, cat)
    num_keys, conflicts = numeric_keys(table)
    matrix = table.numeric(num_keys)
    numeric = {}
    for j, key in enumerate(num_keys):
        stats = describe_numeric(matrix[:, j], table.files, p["outlier_iqr_factor"], p["max_listed_outliers"])
        numeric[key] = {**_entry_facts(cat, key), **stats, "missing_reasons": missing_reasons(records, key)}
        if numeric[key]["family"] == RESOLVED_FAMILY:
            numeric[key]["sources"] = resolved_sources(records, key)
    categorical = {}
    for key in table.keys:
        if key in numeric or key in conflicts:
            continue
        summary = categorical_summary(table.columns[key], p["label_threshold"], p["max_categories"])
        if summary is not None:
            missing = sum(1 for v in table.columns[key] if v is None)
            categorical[key] = {**_entry_facts(cat, key), **summary, "missing": missing,
                                "missing_reasons": missing_reasons(records, key)}
    r, n = pairwise_pearson(matrix) if num_keys else (np.zeros((0, 0)), np.zeros((0, 0), dtype=int))
    usable = [np.any((n[j] >= p["min_correlation_pairs"]) & np.isfinite(r[j])
                     & (np.arange(len(num_keys)) != j)) for j in range(len(num_keys))]
    corr_keys = [k for k, ok in zip(num_keys, usable) if ok]
    sel = [num_keys.index(k) for k in corr_keys]
    r_sel, n_sel = r[np.ix_(sel, sel)], n[np.ix_(sel, sel)]
    ok = (n_sel >= p["min_correlation_pairs"]) & np.isfinite(r_sel)
    upper = np.triu(np.ones_like(ok, dtype=bool), k=1)
    strong = int(np.sum(ok & upper & (np.abs(np.nan_to_num(r_sel)) >= p["strong_correlation"])))
    correlation = {
        "method": "Pearson over the files having both keys",
        "keys": corr_keys,
        "matrix": [[round(float(r_sel[i, j]), 4) if ok[i, j] else None for j in range(len(sel))]
                   for i in range(len(sel))],
        "n": n_sel.tolist(),
        "strongest": strongest_pairs(corr_keys, r_sel, n_sel, p["min_correlation_pairs"],
                                     p["top_correlation_pairs"]),
        "strong_threshold": p["strong_correlation"],
        "strong_count": strong,
    }
    absent_everywhere = {}
    for key in cat.keys():
        if key in table.columns:
            continue
        reasons = Counter(absent_reason(rec.provenance, key) for rec in records)
        reasons.pop(None, None)
        if reasons:
            absent_everywhere[key] = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"files": len(records), "params": p, "numeric": numeric, "categorical": categorical,
            "correlation": correlation, "type_conflicts": conflicts, "absent_everywhere": absent_everywhere,
            "audio": audio_totals(records)}


# --------------------------------------------------------------------------- outputs

def write_outputs(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, kind: str = "tracks",
                  params: dict[str, Any] | None = None, report: bool = True) -> dict[str, str]:
    """Compute the statistics of ``results_dir`` and write table, summary and (optionally) report.

    Returns
    -------
    dict
        Output name (``csv``, ``parquet``, ``json``, ``html``) -> path written.
    """
    from . import __version__

    out = Path(out_dir) if out_dir else Path(results_dir) / "stats"
    cat = load_catalogue()
    records, unreadable = load_records(results_dir, kind)
    _, other = find_info_files(results_dir, kind)
    table = build_table(records, cat)
    summary = summarise(records, cat, params, table)
    summary = {"mirflow_version": __version__, "results_dir": os.path.abspath(results_dir), "kind": kind,
               "unreadable": unreadable,
               "ignored": [p.relative_to(results_dir).as_posix() for p in other], **summary,
               "timing": family_timing(results_dir)}
    written = {}
    csv_path = out / f"features_{kind}.csv"
    write_text_atomic(csv_path, table_csv_text(table))
    written["csv"] = str(csv_path)
    pq_path = out / f"features_{kind}.parquet"
    if write_table_parquet(table, pq_path):
        written["parquet"] = str(pq_path)
    json_path = out / f"stats_{kind}.json"
    write_json_atomic(json_path, summary)
    written["json"] = str(json_path)
    if report:
        from .report import render_report
        from .summary import collect_failures

        html_path = out / f"report_{kind}.html"
        write_text_atomic(html_path, render_report(summary, records, table,
                                                   collect_failures(str(results_dir)), cat))
        written["html"] = str(html_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Statistics and an HTML report over a mirflow results folder.")
    parser.add_argument("results_dir")
    parser.add_argument("--crops", action="store_true", help="summarise the crops (crops/<name>_<N>.INFO)")
    parser.add_argument("--out", help="output folder (default: RESULTS_DIR/stats)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    args = parser.parse_args(argv)
    if not Path(args.results_dir).is_dir():
        parser.error(f"{args.results_dir} is not a folder")
    written = write_outputs(args.results_dir, args.out, "crops" if args.crops else "tracks",
                            report=not args.no_report)
    for name, path in written.items():
        print(f"{name:8s} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
