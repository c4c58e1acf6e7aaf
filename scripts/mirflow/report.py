"""A self-contained HTML report of a results folder (one file, inline CSS and SVG, no network).

Built by ``python -m mirflow.stats RESULTS_DIR`` (``report_<kind>.html`` beside the statistics).
Sections: overview (with total audio duration and source formats), where the time went (wall time
per family from the partial JSONs), completeness (which family was computed, skipped or failed for which
track, and why), tempo and key distributions, label/category counts, correlations, and one
histogram per numeric feature with its unit. The plots are SVG drawn by the small functions
below, so the report needs neither matplotlib nor a browser plug-in.
"""
from __future__ import annotations

import datetime as _dt
import html
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .catalogue import Catalogue, load_catalogue
from .provenance import absent_reasons

#: Parameters of the report (JSON-able).
DEFAULT_PARAMS: dict[str, Any] = {
    "histogram_bins": 20,
    "max_matrix_rows": 300,      # completeness matrix: rows with problems first, then the rest
    "max_heatmap_keys": 48,      # correlation heatmap: keys of the strongest pairs first
    "max_bar_labels": 20,        # category charts show the most frequent labels
    "max_outliers_shown": 5,     # per feature, in the outlier table
}

_PALETTE = {"bar": "#4c78a8", "bar_alt": "#f58518", "axis": "#666", "grid": "#e5e5e5", "text": "#222"}


def esc(text: Any) -> str:
    """Text escaped for HTML/SVG content and attribute values."""
    return html.escape(str(text), quote=True)


def fmt_number(x: float | None, digits: int = 3) -> str:
    """A short human-readable number: ``digits`` significant digits, no exponent for usual magnitudes."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x == 0:
        return "0"
    magnitude = abs(x)
    if 1e-3 <= magnitude < 1e6:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(magnitude))))
        text = f"{x:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{x:.{digits - 1}e}"


# --------------------------------------------------------------------------- SVG primitives

def nice_ticks(lo: float, hi: float, max_ticks: int = 5) -> list[float]:
    """Round tick positions (multiples of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(max_ticks - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def svg_histogram(values: Sequence[float], bins: int | Sequence[float] | np.ndarray = 20, width: int = 280,
                  height: int = 130, unit: str = "", color: str = _PALETTE["bar"], label: str = "",
                  marker: float | None = None) -> str:
    """A histogram as an inline ``<svg>`` element.

    Parameters
    ----------
    values : sequence of float
        Finite values (missing ones already removed).
    bins : int or sequence of float
        Number of equal-width bins, or explicit bin edges.
    width, height : int
        Size in px.
    unit : str
        Unit shown after the axis limits.
    label : str
        Accessible name of the chart.
    marker : float, optional
        A value drawn as a dashed vertical line (the median).

    Returns
    -------
    str
        Well-formed SVG (XML); each bar has a ``<title>`` tooltip with its range and count.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    pad_l, pad_r, pad_t, pad_b = 34, 14, 8, 30
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label or "histogram")}">')]
    if x.size == 0:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">no values</text>')
        return "".join(parts) + "</svg>"
    lo, hi = float(np.min(x)), float(np.max(x))
    if isinstance(bins, int) and lo == hi:
        # One distinct value: a single bar centred on it.
        edges = np.array([lo - 0.5, lo + 0.5]) if lo == 0 else np.array([lo - abs(lo) * 0.05, lo + abs(lo) * 0.05])
    else:
        edges = np.histogram_bin_edges(x, bins=bins)
    counts, edges = np.histogram(x, bins=edges)
    top = int(counts.max()) if counts.size else 0
    bar_w = plot_w / max(len(counts), 1)
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" '
                 f'stroke="{_PALETTE["axis"]}" stroke-width="1"/>')
    for i, c in enumerate(counts):
        if c == 0:
            continue
        h = plot_h * c / top
        bar_x = pad_l + i * bar_w
        tip = f"{fmt_number(edges[i])} to {fmt_number(edges[i + 1])} {unit}".rstrip() + f": {int(c)}"
        parts.append(f'<rect x="{bar_x + 0.5:.2f}" y="{pad_t + plot_h - h:.2f}" width="{max(bar_w - 1, 0.8):.2f}" '
                     f'height="{h:.2f}" fill="{color}"><title>{esc(tip)}</title></rect>')
    def xpos(v: float) -> float:
        return pad_l + plot_w * (v - edges[0]) / (edges[-1] - edges[0])

    ticks = [t for t in nice_ticks(float(edges[0]), float(edges[-1])) if edges[0] <= t <= edges[-1]]
    if len(ticks) < 2:
        ticks = [float(edges[0]), float(edges[-1])]
    for t in ticks:
        parts.append(f'<line x1="{xpos(t):.2f}" y1="{pad_t + plot_h}" x2="{xpos(t):.2f}" y2="{pad_t + plot_h + 3}" '
                     f'stroke="{_PALETTE["axis"]}" stroke-width="1"/>')
        parts.append(f'<text x="{xpos(t):.2f}" y="{pad_t + plot_h + 14}" class="tick" text-anchor="middle">'
                     f'{esc(fmt_number(t))}</text>')
    if marker is not None and edges[0] <= marker <= edges[-1]:
        parts.append(f'<line x1="{xpos(marker):.2f}" y1="{pad_t}" x2="{xpos(marker):.2f}" y2="{pad_t + plot_h}" '
                     f'stroke="#222" stroke-width="1" stroke-dasharray="3,2"><title>median: '
                     f'{esc(fmt_number(marker))} {esc(unit)}</title></line>')
    if unit:
        parts.append(f'<text x="{pad_l + plot_w / 2}" y="{height - 2}" class="tick" text-anchor="middle">'
                     f'{esc(unit)}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 8}" class="tick" text-anchor="end">{top}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" class="tick" text-anchor="end">0</text>')
    return "".join(parts) + "</svg>"


def svg_bar_chart(labels: Sequence[str], counts: Sequence[int], width: int = 420, bar_height: int = 16,
                  color: str = _PALETTE["bar"], label_width: int = 150, total: int | None = None,
                  label: str = "") -> str:
    """A horizontal bar chart as an inline ``<svg>``; one bar per label, count (and share of ``total``) at its end."""
    n = len(labels)
    height = max(n, 1) * (bar_height + 4) + 6
    plot_w = width - label_width - 70
    top = max(counts) if counts else 0
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label or "bar chart")}">')]
    if n == 0:
        parts.append('<text x="4" y="16" class="muted">no values</text>')
    for i, (lab, c) in enumerate(zip(labels, counts)):
        y = 3 + i * (bar_height + 4)
        w = plot_w * c / top if top else 0
        share = f" ({100 * c / total:.0f} %)" if total else ""
        short = lab if len(lab) <= 24 else lab[:23] + "…"
        parts.append(f'<text x="{label_width - 6}" y="{y + bar_height - 4}" class="lbl" text-anchor="end">'
                     f'<title>{esc(lab)}</title>{esc(short)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{max(w, 1):.2f}" height="{bar_height}" fill="{color}">'
                     f'<title>{esc(lab)}: {c}{esc(share)}</title></rect>')
        parts.append(f'<text x="{label_width + w + 4:.2f}" y="{y + bar_height - 4}" class="tick">{c}{esc(share)}'
                     f'</text>')
    return "".join(parts) + "</svg>"


def correlation_color(r: float | None) -> str:
    """Diverging colour: blue for -1, white for 0, red for +1; light grey when undefined."""
    if r is None or not math.isfinite(r):
        return "#eeeeee"
    t = max(-1.0, min(1.0, r))
    if t >= 0:
        target = (202, 0, 32)
    else:
        target = (5, 113, 176)
    a = abs(t)
    rgb = tuple(round(255 + (c - 255) * a) for c in target)
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def svg_heatmap(labels: Sequence[str], matrix: Sequence[Sequence[float | None]], cell: int = 14,
                label_width: int | None = None, label: str = "correlation heatmap") -> str:
    """A square heatmap of ``matrix`` (values in [-1, 1], None = undefined) with row and column labels.

    ``label_width`` (px reserved for the labels left and above) defaults to fit the longest label.
    """
    n = len(labels)
    if label_width is None:
        label_width = int(12 + 6.4 * max((len(lab) for lab in labels), default=4))
    top = label_width
    width = label_width + n * cell + 4
    height = top + n * cell + 4
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">')]
    for i, lab in enumerate(labels):
        y = top + i * cell
        parts.append(f'<text x="{label_width - 4}" y="{y + cell - 3}" class="lbl" text-anchor="end">{esc(lab)}</text>')
        x = label_width + i * cell + cell - 3
        parts.append(f'<text transform="translate({x},{top - 4}) rotate(-90)" class="lbl">{esc(lab)}</text>')
    for i in range(n):
        for j in range(n):
            r = matrix[i][j]
            tip = f"{labels[i]} × {labels[j]}: r = " + ("undefined" if r is None else f"{r:.3f}")
            parts.append(f'<rect x="{label_width + j * cell}" y="{top + i * cell}" width="{cell - 1}" '
                         f'height="{cell - 1}" fill="{correlation_color(r)}"><title>{esc(tip)}</title></rect>')
    return "".join(parts) + "</svg>"


def svg_color_scale(width: int = 220) -> str:
    """The legend of :func:`svg_heatmap`."""
    stops = "".join(f'<rect x="{10 + i * (width - 20) / 20:.1f}" y="4" width="{(width - 20) / 20 + 0.5:.1f}" '
                    f'height="10" fill="{correlation_color(-1 + i / 10)}"/>' for i in range(21))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="30" '
            f'viewBox="0 0 {width} 30" role="img" aria-label="colour scale">{stops}'
            f'<text x="10" y="27" class="tick">-1</text>'
            f'<text x="{width / 2}" y="27" class="tick" text-anchor="middle">0</text>'
            f'<text x="{width - 10}" y="27" class="tick" text-anchor="end">+1</text></svg>')


# --------------------------------------------------------------------------- completeness

_STATE_ORDER = {"failed": 0, "skipped": 1, "partial": 2, "ok": 3, "unknown": 4}
_STATE_MARK = {"ok": "✓", "partial": "◐", "skipped": "–", "failed": "✗", "unknown": "?"}


def completeness(records: list, failures: list[dict[str, str]], catalogue: Catalogue
                 ) -> tuple[list[str], list[dict[str, Any]]]:
    """The completeness matrix: one row per track (or crop), one column per family (and failed step).

    Returns
    -------
    families : list of str
        Column names in catalogue order (steps that are not families, e.g. ``merge``, last, alphabetically).
    rows : list of dict
        ``{"track", "file", "cells": {family: (state, detail)}}``, rows with failures first, then
        skipped, then partial, then complete. ``state`` is ``ok`` (computed, every key present),
        ``partial`` (computed, some keys absent; detail lists key: reason), ``skipped`` (not
        computed; detail is the reason from ``_provenance.missing_families``), ``failed`` (the step
        failed; detail is the reason and log), or ``unknown``.
    """
    cat_families = list(dict.fromkeys(e.family for e in catalogue.entries))  # catalogue order
    fam_keys = {f: catalogue.keys_for_family(f) for f in cat_families}
    failed_by_track: dict[str, dict[str, str]] = defaultdict(dict)
    for f in failures:
        failed_by_track[f["track"]][f["step"]] = f"{f['reason']} (log: {f['log']})"
    seen: set[str] = set()
    rows = []
    for rec in records:
        prov = rec.provenance
        # Track .INFO: "families"; crop .INFO: "families_computed" plus keys copied from the track.
        computed = dict.fromkeys(prov.get("families") or prov.get("families_computed") or {}, "computed")
        for key in prov.get("copied_from_track") or []:
            if key in catalogue:
                computed.setdefault(catalogue.entry(key).family, "copied from the track")
        missing = prov.get("missing_families") or {}
        absent = absent_reasons(prov)
        failed = failed_by_track.get(rec.track_id, {})
        cells = {}
        for fam in set(computed) | set(missing) | set(failed):
            seen.add(fam)
            if fam in failed:
                cells[fam] = ("failed", failed[fam])
            elif fam in missing:
                cells[fam] = ("skipped", str(missing[fam]))
            else:
                gone = {k: absent[k] for k in fam_keys.get(fam, []) if k in absent and k not in rec.values}
                if gone:
                    detail = "; ".join(f"{k}: {why}" for k, why in sorted(gone.items()))
                    cells[fam] = ("partial", f"{len(gone)} of {len(fam_keys[fam])} keys absent: {detail}")
                else:
                    cells[fam] = ("ok", computed[fam])
        label = rec.track_id if "crop_index" not in prov else f"{rec.track_id} #{prov['crop_index']}"
        rows.append({"track": label, "file": rec.file, "cells": cells})
    known = {r["track"] for r in rows}
    for track, steps in sorted(failed_by_track.items()):
        if track in known:
            continue
        seen.update(steps)
        rows.append({"track": track, "file": None,
                     "cells": {s: ("failed", why) for s, why in steps.items()}})
    families = [f for f in cat_families if f in seen] + sorted(seen - set(cat_families))
    for row in rows:
        row["worst"] = min((_STATE_ORDER[s] for s, _ in row["cells"].values()), default=_STATE_ORDER["unknown"])
        if row["file"] is None:
            row["worst"] = -1
    rows.sort(key=lambda r: (r["worst"], r["track"]))
    return families, rows


# --------------------------------------------------------------------------- page

_CSS = """
:root{--fg:#1d1d1f;--muted:#6b6b6b;--line:#e3e3e3;--bg:#fafafa;--card:#fff;--ok:#2e9d57;--partial:#a6d8b4;
--skipped:#c8c8c8;--failed:#d1332f}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:1220px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 10px;padding-bottom:4px;
border-bottom:2px solid var(--line)}h3{font-size:15px;margin:22px 0 8px}
.sub{color:var(--muted);margin:0 0 18px}
nav{display:flex;flex-wrap:wrap;gap:6px 14px;margin:10px 0 6px}nav a{color:#2857a4;text-decoration:none}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .v{font-size:24px;font-weight:600}.card .k{color:var(--muted);font-size:12.5px}
.card.bad .v{color:var(--failed)}
table{border-collapse:collapse;background:var(--card)}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.feat{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 10px 6px}
.feat h4{margin:0;font-size:13.5px;font-family:ui-monospace,Menlo,Consolas,monospace}
.feat .u{color:var(--muted);font-weight:400;font-family:system-ui,sans-serif}
.feat .s{color:var(--muted);font-size:12px;margin:2px 0 4px}
.feat .warn{color:#a15c00}.help{text-decoration:underline dotted;cursor:help}
.feat svg{width:100%;height:auto;display:block}
svg.chart text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#333}
svg.chart text.tick{fill:#666;font-size:10.5px}svg.chart text.muted{fill:#999}
.matrix{overflow:auto;max-height:640px;border:1px solid var(--line)}
.matrix table{font-size:12px}.matrix th.fam{writing-mode:vertical-rl;transform:rotate(180deg);
white-space:nowrap;padding:6px 2px;font-weight:500}
.matrix td.c{text-align:center;width:24px;padding:2px;cursor:default}
.matrix td.track{white-space:nowrap;max-width:340px;overflow:hidden;text-overflow:ellipsis}
.matrix thead th{position:sticky;top:0;z-index:1}
td.ok{background:var(--ok);color:#fff}td.partial{background:var(--partial)}td.skipped{background:var(--skipped)}
td.failed{background:var(--failed);color:#fff}td.unknown{background:#fff;color:#bbb}
.legend span{display:inline-block;padding:1px 8px;margin-right:8px;border-radius:3px;font-size:12px}
.legend .ok{background:var(--ok);color:#fff}.legend .partial{background:var(--partial)}
.legend .skipped{background:var(--skipped)}.legend .failed{background:var(--failed);color:#fff}
.legend .unknown{background:#fff;color:#999;border:1px solid var(--line)}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.note{color:var(--muted);font-size:12.5px}
details{margin:8px 0}summary{cursor:pointer;color:#2857a4}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
"""

_PITCH = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6, "G": 7,
          "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11, "Cb": 11, "E#": 5, "Fb": 4, "B#": 0}


def key_sort_order(label: str) -> tuple:
    """Sort key for labels like ``"A minor"``: by tonic pitch class, major before minor, unknown last."""
    m = re.match(r"^\s*([A-G][#b]?)\s*(\w*)", label)
    if not m or m.group(1) not in _PITCH:
        return (99, label)
    return (_PITCH[m.group(1)], 0 if m.group(2).lower().startswith("maj") else 1, label)


def fmt_duration(seconds: float) -> str:
    """A duration as ``1 h 02 min``, ``3 min 05 s`` or ``12.5 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


def _timing_section(summary: dict) -> str:
    timing = summary.get("timing") or {}
    families = timing.get("families") or {}
    if not families:
        return _section("timing", "Where the time went",
                        "<p>No wall times recorded (no partial JSONs under features/).</p>")
    total = timing["total_s"] or 1.0
    rows = "".join(
        f"<tr><td><code>{esc(f)}</code></td><td class='n'>{t['jobs']}</td>"
        f"<td class='n'>{esc(fmt_duration(t['total_s']))}</td><td class='n'>{100 * t['total_s'] / total:.1f} %</td>"
        f"<td class='n'>{t['mean_s']:.1f}</td>"
        f"<td class='n'>{t['max_s']:.1f}</td><td>{esc(t['slowest'])}</td></tr>" for f, t in families.items())
    audio_s = (summary.get("audio") or {}).get("duration_s")
    pace = (f"; {timing['total_s'] / audio_s:.2f} s of job time per second of audio" if audio_s else "")
    return _section("timing", "Where the time went",
                    f"<p class='note'>Wall time of every job from its partial JSON (<code>_meta.wall_time_s</code>), "
                    f"summed per family: {esc(fmt_duration(timing['total_s']))} in all{pace}. Jobs that ran in "
                    "parallel each count in full.</p><table><tr><th>family / step</th><th>jobs</th><th>total</th>"
                    "<th>share</th><th>mean (s)</th><th>max (s)</th><th>slowest track</th></tr>" + rows + "</table>")


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _card(value: Any, label: str, bad: bool = False) -> str:
    return (f'<div class="card{" bad" if bad else ""}"><div class="v">{esc(value)}</div>'
            f'<div class="k">{esc(label)}</div></div>')


def _overview(summary: dict, records: list, failures: list, families: list[str], rows: list) -> str:
    n = summary.get("files", len(records))
    failed_tracks = {f["track"] for f in failures}
    complete = sum(1 for r in rows if r["file"] is not None and r["worst"] >= _STATE_ORDER["ok"])
    total_cells = sum(len(r["cells"]) for r in rows if r["file"] is not None)
    ok_cells = sum(1 for r in rows if r["file"] is not None for s, _ in r["cells"].values() if s in ("ok", "partial"))
    keys_present = [s["count"] for s in summary["numeric"].values()] + \
        [s["files"] for s in summary["categorical"].values()]
    value_share = (sum(keys_present) / (n * len(keys_present))) if n and keys_present else None
    cards = [
        _card(n, f".INFO files ({summary.get('kind', 'tracks')})"),
        _card(complete, "with every family complete"),
        _card(len(summary["numeric"]), "numeric features"),
        _card(len(summary["categorical"]), "text / label features"),
        _card(f"{100 * ok_cells / total_cells:.1f} %" if total_cells else "–", "family results computed"),
        _card(f"{100 * value_share:.1f} %" if value_share is not None else "–", "feature values present"),
        _card(len(failures), "failed steps", bad=bool(failures)),
        _card(len(failed_tracks), "tracks with a failure", bad=bool(failed_tracks)),
    ]
    audio = summary.get("audio") or {}
    if audio:
        cards.insert(1, _card(fmt_duration(audio["duration_s"]),
                              f"of audio in {audio['files_with_duration']} file(s)"))
    unreadable = summary.get("unreadable") or []
    if unreadable:
        cards.append(_card(len(unreadable), "unreadable .INFO files", bad=True))
    body = f'<div class="cards">{"".join(cards)}</div>'
    if audio.get("formats"):
        body += ("<p class='note'>Source formats (codec of the input file): "
                 + ", ".join(f"{esc(fmt)} {n}" for fmt, n in audio["formats"].items()) + "</p>")
    if unreadable:
        body += "<h3>Unreadable .INFO files (left out)</h3><ul>" + "".join(
            f"<li><code>{esc(u['file'])}</code>: {esc(u['reason'])}</li>" for u in unreadable[:50]) + "</ul>"
    return _section("overview", "Overview", body)


def _completeness_section(families: list[str], rows: list, max_rows: int) -> str:
    if not rows:
        return _section("completeness", "Completeness", "<p>No .INFO files and no failed steps found.</p>")
    per_family = {f: Counter(r["cells"][f][0] for r in rows if f in r["cells"]) for f in families}
    reasons: dict[str, Counter] = {f: Counter() for f in families}
    for r in rows:
        for f, (state, detail) in r["cells"].items():
            if state in ("skipped", "failed"):
                reasons[f][detail.split(" (log:")[0]] += 1
    head = ("<table><tr><th>family / step</th><th>complete</th><th>some keys absent</th><th>skipped</th>"
            "<th>failed</th><th>why (most common)</th></tr>")
    lines = []
    for f in families:
        c = per_family[f]
        why = "<br>".join(f"{esc(reason)} <span class='note'>× {k}</span>" for reason, k in reasons[f].most_common(3))
        lines.append(f"<tr><td><code>{esc(f)}</code></td><td class='n'>{c['ok']}</td><td class='n'>{c['partial']}"
                     f"</td><td class='n'>{c['skipped']}</td><td class='n'>{c['failed']}</td><td>{why}</td></tr>")
    table = head + "".join(lines) + "</table>"
    shown = rows[:max_rows]
    header = "".join(f'<th class="fam">{esc(f)}</th>' for f in families)
    body_rows = []
    for r in shown:
        cells = []
        for f in families:
            state, detail = r["cells"].get(f, ("unknown", "no record of this family"))
            cells.append(f'<td class="c {state}" title="{esc(f + ": " + state + " — " + detail)}">'
                         f'{_STATE_MARK[state]}</td>')
        name = r["track"] if r["file"] is not None else f"{r['track']} (no .INFO)"
        body_rows.append(f'<tr><td class="track" title="{esc(r["file"] or "no .INFO written")}">{esc(name)}</td>'
                         + "".join(cells) + "</tr>")
    note = ""
    if len(rows) > max_rows:
        hidden_ok = sum(1 for r in rows[max_rows:] if r["worst"] >= _STATE_ORDER["ok"])
        note = (f"<p class='note'>Showing {max_rows} of {len(rows)} rows, problems first; not shown: "
                f"{len(rows) - max_rows - hidden_ok} with problems, {hidden_ok} complete "
                "(the family table above counts all of them).</p>")
    legend = ('<p class="legend"><span class="ok">✓ complete</span><span class="partial">◐ some keys absent</span>'
              '<span class="skipped">– skipped</span><span class="failed">✗ failed</span>'
              '<span class="unknown">? no record (neither computed nor skipped in this .INFO)</span>'
              '<span class="note">hover a cell for the reason</span></p>')
    matrix = (f'<div class="matrix"><table><thead><tr><th>track</th>{header}</tr></thead><tbody>'
              + "".join(body_rows) + "</tbody></table></div>")
    return _section("completeness", "Completeness",
                    "<p class='note'>Per family: computed with every key, computed with some keys absent "
                    "(each .INFO's <code>_provenance.absent</code>), skipped (<code>_provenance.missing_families"
                    "</code>) or failed (the failure marker in the rule's log).</p>"
                    + table + "<h3>Tracks × families</h3>" + legend + note + matrix)


def _tempo_key_section(summary: dict, table, bins: int) -> str:
    parts = []
    if "bpm" in table.columns:
        bpm = [v for v in table.columns["bpm"] if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if bpm:
            lo, hi = 5 * math.floor(min(bpm) / 5), 5 * math.ceil(max(bpm) / 5 + 1e-9)
            edges = np.arange(lo, max(hi, lo + 5) + 0.1, 5.0)
            s = summary["numeric"].get("bpm", {})
            defined = ""
            if "bpm_is_defined" in table.columns:
                flags = [v for v in table.columns["bpm_is_defined"] if v is not None]
                if flags:
                    defined = f"; bpm_is_defined = 1 for {sum(1 for v in flags if v == 1)} of {len(flags)}"
            parts.append(f"<div><h3>Tempo (5 BPM bins)</h3>"
                         f"{svg_histogram(bpm, edges, 520, 190, 'BPM', label='tempo', marker=s.get('median'))}"
                         f"<p class='note'>n = {len(bpm)}, median {fmt_number(s.get('median'))} BPM{defined}</p></div>")
    for key in ("key", "tonic_scale"):
        cat = summary["categorical"].get(key)
        if not cat:
            continue
        items = sorted(cat["counts"].items(), key=lambda kv: key_sort_order(kv[0]) if key == "key" else (-kv[1],))
        labels, counts = [k for k, _ in items], [v for _, v in items]
        parts.append(f"<div><h3><code>{esc(key)}</code></h3>"
                     f"{svg_bar_chart(labels, counts, 430, 14, _PALETTE['bar_alt'], 90, cat['files'], key)}</div>")
    if not parts:
        return _section("tempo-key", "Tempo and key", "<p>No bpm or key values in these files.</p>")
    return _section("tempo-key", "Tempo and key", f'<div class="row">{"".join(parts)}</div>')


def _categorical_section(summary: dict, max_labels: int) -> str:
    blocks, free_text, lists = [], [], []
    for key, cat in summary["categorical"].items():
        if key in ("key", "tonic_scale"):
            continue
        if cat["type"] == "text" or (cat["type"] == "string" and cat["files"] >= 10
                                     and cat["distinct"] > 0.5 * cat["files"]):
            example = cat.get("example") or ""
            short = example if len(example) <= 90 else example[:89] + "…"
            free_text.append(f"<li><code>{esc(key)}</code> ({cat['distinct']} distinct in {cat['files']} files"
                             + (f", median {cat['median_words']:.0f} words" if "median_words" in cat else "")
                             + (f"): <q>{esc(short)}</q></li>" if short else ")</li>"))
            continue
        if cat["type"] == "number_list":
            n = cat["lengths"]
            lists.append(f"<tr><td><code>{esc(key)}</code></td><td class='n'>{cat['files']}</td>"
                         f"<td class='n'>{fmt_number(n['min'])}</td><td class='n'>{fmt_number(n['median'])}</td>"
                         f"<td class='n'>{fmt_number(n['max'])}</td></tr>")
            continue
        if not cat.get("counts"):
            continue
        items = list(cat["counts"].items())[:max_labels]
        what = (f"files where p &gt; {cat['threshold']}" if cat["type"] == "labels" else "files")
        more = f", {cat['distinct'] - max_labels} more" if cat["distinct"] > max_labels else ""
        chart = svg_bar_chart([k for k, _ in items], [v for _, v in items], 520, 14, total=cat["files"], label=key)
        blocks.append(f"<div><h3><code>{esc(key)}</code> <span class='note'>({what}; {cat['distinct']} "
                      f"distinct{more}; {cat['files']} with a value)</span></h3>"
                      f"{chart}"
                      "</div>")
    text = ""
    if free_text:
        text = ("<h3>Free text (not charted as categories)</h3><ul class='note'>" + "".join(free_text) + "</ul>")
    if lists:
        text += ("<h3>Lists of numbers (e.g. beat times; not charted as categories)</h3><table><tr><th>key</th>"
                 "<th>files</th><th>min values</th><th>median values</th><th>max values</th></tr>"
                 + "".join(lists) + "</table>")
    if not blocks and not text:
        return _section("categories", "Labels and text values", "<p>No label or text features in these files.</p>")
    return _section("categories", "Labels and text values", f'{text}<div class="row">{"".join(blocks)}</div>')


def _correlation_section(summary: dict, max_keys: int) -> str:
    corr = summary["correlation"]
    keys = corr["keys"]
    if len(keys) < 2:
        return _section("correlation", "Correlations", "<p>Fewer than two numeric features vary across files.</p>")
    chosen: list[str] = []
    for pair in corr["strongest"]:
        for k in (pair["a"], pair["b"]):
            if k not in chosen and len(chosen) < max_keys:
                chosen.append(k)
    for k in keys:
        if len(chosen) >= max_keys:
            break
        if k not in chosen:
            chosen.append(k)
    chosen.sort(key=keys.index)
    idx = [keys.index(k) for k in chosen]
    sub = [[corr["matrix"][i][j] for j in idx] for i in idx]
    note = ""
    if len(chosen) < len(keys):
        note = (f"<p class='note'>{len(chosen)} of {len(keys)} features shown: those of the strongest pairs first. "
                "The full matrix is in the JSON summary.</p>")
    rows = "".join(f"<tr><td><code>{esc(p['a'])}</code></td><td><code>{esc(p['b'])}</code></td>"
                   f"<td class='n'>{p['r']:+.3f}</td><td class='n'>{p['n']}</td></tr>" for p in corr["strongest"][:20])
    pairs = (f"<h3>Strongest pairs</h3><p class='note'>{corr['strong_count']} pair(s) with |r| ≥ "
             f"{corr['strong_threshold']}; n = files having both keys.</p>"
             f"<table><tr><th>feature</th><th>feature</th><th>r</th><th>n</th></tr>{rows}</table>")
    small = max((p["n"] for p in corr["strongest"]), default=0)
    if small < 30:
        note += (f"<p class='note'>At most {small} files share a pair of keys: with so few files, large |r| "
                 "values arise by chance.</p>")
    heat = (f"<div><h3>Pearson r</h3><div>{svg_color_scale()}</div><div>{svg_heatmap(chosen, sub)}</div>"
            f"{note}</div>")
    return _section("correlation", "Correlations", f'<div class="row">{heat}<div>{pairs}</div></div>')


def _features_section(summary: dict, table, catalogue: Catalogue, bins: int, max_outliers: int) -> str:
    by_family: dict[str, list[str]] = defaultdict(list)
    for key, s in summary["numeric"].items():
        by_family[s["family"] or "not in the catalogue"].append(key)
    first_entry: dict[str, int] = {}
    for i, e in enumerate(catalogue.entries):
        first_entry.setdefault(e.family, i)
    fam_order = sorted(by_family, key=lambda f: (first_entry.get(f, len(catalogue.entries)), f))
    blocks, outlier_rows = [], []
    for fam in fam_order:
        cards = []
        for key in by_family[fam]:
            s = summary["numeric"][key]
            values = [float(v) for v in table.columns[key] if isinstance(v, (int, float)) and not isinstance(v, bool)]
            unit = s.get("unit") or ""
            reasons = "; ".join(f"{why} ({k})" for why, k in (s.get("missing_reasons") or {}).items())
            missing = (f', <span title="{esc(reasons)}" class="help">{s["missing"]} missing</span>'
                       if s["missing"] else "")
            warn = (f"<div class='s warn'>{s['outlier_count']} outlier(s) beyond 1.5 IQR</div>"
                    if s["outlier_count"] else "<div class='s'>no outliers beyond 1.5 IQR</div>")
            desc = s.get("description") or "not in the feature catalogue"
            sources = s.get("sources") or {}
            if len(sources) > 1:
                warn += ("<div class='s warn'>mixed sources: "
                         + ", ".join(f"{esc(src)} {n}" for src, n in sources.items()) + "</div>")
            elif sources:
                warn += f"<div class='s'>source: {esc(next(iter(sources)))}</div>"
            cards.append(f'<div class="feat" title="{esc(desc)}"><h4>{esc(key)} '
                         f'<span class="u">{esc(unit)}</span></h4>'
                         f"<div class='s'>n = {s['count']}{missing}; median {fmt_number(s['median'])}, "
                         f"IQR {fmt_number(s['q1'])} to {fmt_number(s['q3'])}</div>"
                         f"{svg_histogram(values, bins, 340, 130, unit, label=key, marker=s['median'])}"
                         f"{warn}</div>")
            for o in s["outliers"][:max_outliers]:
                outlier_rows.append(f"<tr><td><code>{esc(key)}</code></td><td class='n'>{fmt_number(o['value'], 4)}"
                                    f"</td><td>{esc(unit)}</td><td><code>{esc(o['file'])}</code></td></tr>")
        blocks.append(f"<h3>{esc(fam)}</h3><div class='grid'>{''.join(cards)}</div>")
    if not blocks:
        return _section("features", "Feature distributions", "<p>No numeric features in these files.</p>")
    outliers = ""
    if outlier_rows:
        outliers = ("<details><summary>Outliers (most extreme first, up to "
                    f"{max_outliers} per feature)</summary><table><tr><th>feature</th><th>value</th><th>unit</th>"
                    f"<th>file</th></tr>{''.join(outlier_rows)}</table></details>")
    return _section("features", "Feature distributions",
                    "<p class='note'>One histogram per numeric feature (hover a card for its definition, a bar for "
                    "its range and count).</p>" + outliers + "".join(blocks))


def render_report(summary: dict[str, Any], records: list, table, failures: list[dict[str, str]],
                  catalogue: Catalogue | None = None, params: dict[str, Any] | None = None,
                  title: str | None = None) -> str:
    """The report as one HTML document.

    Parameters
    ----------
    summary : dict
        :func:`mirflow.stats.summarise` output (plus ``kind``, ``results_dir``, ``unreadable``).
    records : list of InfoRecord
        The parsed .INFO files (for the completeness matrix).
    table : FeatureTable
        Values aligned by file (for the histograms).
    failures : list of dict
        :func:`mirflow.summary.collect_failures` output.
    catalogue : Catalogue, optional
        Units, descriptions and family order.
    params : dict, optional
        See :data:`DEFAULT_PARAMS`.
    title : str, optional
        Page title.
    """
    cat = catalogue or load_catalogue()
    p = {**DEFAULT_PARAMS, **(params or {})}
    kind = summary.get("kind", "tracks")
    families, rows = completeness(records, failures, cat)
    heading = title or f"mirflow corpus report: {kind}"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    source = esc(summary.get("results_dir", ""))
    sections = [
        _overview(summary, records, failures, families, rows),
        _timing_section(summary),
        _completeness_section(families, rows, p["max_matrix_rows"]),
        _tempo_key_section(summary, table, p["histogram_bins"]),
        _categorical_section(summary, p["max_bar_labels"]),
        _correlation_section(summary, p["max_heatmap_keys"]),
        _features_section(summary, table, cat, p["histogram_bins"], p["max_outliers_shown"]),
    ]
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("overview", "Overview"), ("timing", "Time"), ("completeness", "Completeness"),
        ("tempo-key", "Tempo and key"),
        ("categories", "Labels"), ("correlation", "Correlations"), ("features", "Distributions")))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(heading)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{esc(heading)}</h1><p class='sub'>{source} · mirflow {esc(summary.get('mirflow_version', ''))}"
            f" · {stamp}</p><nav>{nav}</nav>" + "".join(sections) + "</main></body></html>\n")
