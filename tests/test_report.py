"""The HTML report: sections present, every SVG well-formed, completeness states and reasons, no network."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from mirflow.jobspec import FAILURE_MARKER
from mirflow.report import (
    completeness,
    correlation_color,
    nice_ticks,
    render_report,
    svg_bar_chart,
    svg_heatmap,
    svg_histogram,
)
from mirflow.stats import build_table, load_records, summarise
from mirflow.summary import collect_failures
from test_stats import write_info

SVG_NS = "{http://www.w3.org/2000/svg}"


def _svgs(html_text: str) -> list[ET.Element]:
    blocks = re.findall(r"<svg\b.*?</svg>", html_text, flags=re.S)
    return [ET.fromstring(b) for b in blocks]  # raises ParseError on malformed SVG


@pytest.fixture
def corpus(tmp_path):
    """Three analysed tracks (one with a silent stem, one without stems) and one whose rhythm step failed."""
    fams = ("loudness", "rhythm", "loudness_stems")
    for i, (bpm, lufs, key) in enumerate([(120.0, -14.0, "A minor"), (90.0, -9.5, "C major"),
                                          (128.0, -11.0, "A minor")]):
        values = {"bpm": bpm, "bpm_is_defined": 1, "lufs": lufs, "lra": 4.0 + i, "key": key,
                  "lufs_drums": -20.0 - i, "essentia_genre": {"Electronic---House": 0.8 - 0.2 * i}}
        absent, missing = {}, {}
        if i == 1:
            values.pop("lufs_drums")
            absent["lufs_drums"] = "silent stem"
        if i == 2:
            values.pop("lufs_drums")
            missing["loudness_stems"] = "no stems: none provided"
            absent["lufs_drums"] = "family loudness_stems not computed: no stems: none provided"
        write_info(tmp_path, f"t{i}", values, absent=absent, missing=missing,
                   families=tuple(f for f in fams if f not in missing))
    log = tmp_path / "t3" / "logs" / "rhythm.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"2026-01-01 ERROR {FAILURE_MARKER} track='t3' step=rhythm reason=decoder exploded\n",
                   encoding="utf-8")
    return tmp_path


def _render(root):
    records, _ = load_records(root)
    table = build_table(records)
    summary = {"kind": "tracks", "results_dir": str(root), "mirflow_version": "test", "unreadable": [],
               **summarise(records, table=table, params={"min_correlation_pairs": 3})}
    failures = collect_failures(str(root))
    return render_report(summary, records, table, failures), records, failures


def test_report_has_sections_and_valid_svg(corpus):
    html_text, _, _ = _render(corpus)
    for anchor in ("overview", "completeness", "tempo-key", "categories", "correlation", "features"):
        assert f'<section id="{anchor}">' in html_text
    svgs = _svgs(html_text)
    assert all(s.tag == f"{SVG_NS}svg" for s in svgs)
    labels = [s.get("aria-label") for s in svgs]
    # tempo, key chart, genre labels, heatmap + scale, one histogram per numeric key
    for expected in ("tempo", "key", "essentia_genre", "correlation heatmap", "bpm", "lufs", "lra", "lufs_drums"):
        assert expected in labels, expected
    # units from the catalogue next to the feature names
    assert 'lufs <span class="u">LUFS</span>' in html_text and 'bpm <span class="u">BPM</span>' in html_text

    class Strict(HTMLParser):
        def __init__(self):
            super().__init__()
            self.external = []

        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("src", "href") and value and not value.startswith("#"):
                    self.external.append((tag, name, value))

    parser = Strict()
    parser.feed(html_text)
    assert parser.external == []  # self-contained: no scripts, images, fonts or style sheets fetched


def test_completeness_states_and_reasons(corpus):
    html_text, records, failures = _render(corpus)
    assert failures == [{"track": "t3", "step": "rhythm", "reason": "decoder exploded",
                         "log": str(corpus / "t3" / "logs" / "rhythm.log")}]
    from mirflow.catalogue import load_catalogue

    families, rows = completeness(records, failures, load_catalogue())
    assert families == ["loudness", "loudness_stems", "rhythm"]
    by_track = {r["track"]: r for r in rows}
    assert [r["track"] for r in rows] == ["t3", "t2", "t1", "t0"]  # no .INFO first, then skipped, partial, ok
    assert by_track["t3"]["cells"] == {"rhythm": ("failed", f"decoder exploded (log: {failures[0]['log']})")}
    assert by_track["t2"]["cells"]["loudness_stems"] == ("skipped", "no stems: none provided")
    state, detail = by_track["t1"]["cells"]["loudness_stems"]
    assert state == "partial" and "lufs_drums: silent stem" in detail
    assert by_track["t0"]["cells"] == dict.fromkeys(("loudness", "rhythm", "loudness_stems"), ("ok", "computed"))
    assert "decoder exploded" in html_text and "t3 (no .INFO)" in html_text
    assert 'title="loudness_stems: skipped — no stems: none provided"' in html_text


def test_histogram_bars_match_counts():
    svg = svg_histogram([1.0, 1.0, 1.2, 3.0], bins=2, unit="s", label="h")
    root = ET.fromstring(svg)
    bars = root.findall(f"{SVG_NS}rect")
    tips = [b.find(f"{SVG_NS}title").text for b in bars]
    assert tips == ["1 to 2 s: 3", "2 to 3 s: 1"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] == pytest.approx(3 * heights[1], abs=0.02)  # coordinates have 2 decimals
    single = ET.fromstring(svg_histogram([5.0, 5.0], bins=10))
    assert len(single.findall(f"{SVG_NS}rect")) == 1
    empty = ET.fromstring(svg_histogram([], bins=10))
    assert "no values" in "".join(empty.itertext())


def test_bar_chart_heatmap_and_colours():
    bar = ET.fromstring(svg_bar_chart(["a & b", "<c>"], [4, 2], total=8))
    assert [r.find(f"{SVG_NS}title").text for r in bar.findall(f"{SVG_NS}rect")] == ["a & b: 4 (50 %)", "<c>: 2 (25 %)"]
    heat = ET.fromstring(svg_heatmap(["x", "y", "z"], [[1.0, -1.0, None], [-1.0, 1.0, 0.0], [None, 0.0, 1.0]]))
    cells = heat.findall(f"{SVG_NS}rect")
    assert len(cells) == 9
    assert cells[1].get("fill") == "#0571b0" and cells[0].get("fill") == "#ca0020"
    assert cells[2].get("fill") == "#eeeeee" and cells[5].get("fill") == "#ffffff"
    assert correlation_color(float("nan")) == "#eeeeee"


def test_nice_ticks():
    assert nice_ticks(85, 140) == [100, 120, 140]
    assert nice_ticks(0, 1) == [0, 0.5, 1]
    assert nice_ticks(-24.5, -21.6) == [-24, -23, -22]
    assert np.allclose(nice_ticks(0.373, 1.4), [0.5, 1.0])


def test_completeness_of_crops(tmp_path):
    """Crop .INFO files list computed families and the keys copied from the track."""
    crops = tmp_path / "t0" / "crops"
    crops.mkdir(parents=True)
    prov = {"track_id": "t0", "crop_index": 2, "families_computed": {"loudness": 1},
            "copied_from_track": ["drum_hits_kick"], "absent": {"lra": "too short"}}
    (crops / "t0_2.INFO").write_text(
        '{"lufs": -12.0, "drum_hits_kick": 40, "_provenance": ' + __import__("json").dumps(prov) + "}",
        encoding="utf-8")
    from mirflow.catalogue import load_catalogue

    records, _ = load_records(tmp_path, "crops")
    families, rows = completeness(records, [], load_catalogue())
    assert families == ["loudness", "drums"]
    assert rows[0]["track"] == "t0 #2"
    assert rows[0]["cells"]["drums"] == ("ok", "copied from the track")
    assert rows[0]["cells"]["loudness"] == ("partial", "1 of 2 keys absent: lra: too short")


# ------------------------------------------------------------------ issue 16: lists, text, legend, totals, timing

@pytest.fixture
def rich_corpus(tmp_path):
    """Two tracks with durations, codecs, captions and beat lists, plus the partial JSONs' wall times."""
    import json

    caption = "A dark techno track at {} BPM in A minor with a driving drum machine."
    for i, (codec, duration) in enumerate([("flac", 3600.0), ("mp3", 125.5)]):
        write_info(tmp_path, f"t{i}", {"bpm": 120.0 + i, "lufs": -10.0 - i, "duration_s": duration, "codec": codec,
                                       "caption_feature_sentence": caption.format(120 + i),
                                       "beats": [0.5 * k for k in range(4 + 2 * i)]})
        feats = tmp_path / f"t{i}" / "features"
        feats.mkdir()
        for fam, seconds in (("rhythm", 10.0 + i), ("timbral", 100.0 + 50 * i)):
            (feats / f"{fam}.json").write_text(json.dumps({"_meta": {"family": fam, "wall_time_s": seconds}}))
    return tmp_path


def test_lists_of_times_and_free_text_are_not_charted_as_categories(rich_corpus):
    html_text, _, _ = _render(rich_corpus)
    labels = [s.get("aria-label") for s in _svgs(html_text)]
    assert "beats" not in labels and "caption_feature_sentence" not in labels
    assert "codec" in labels  # a short label-like string is still a category
    assert "<td><code>beats</code></td><td class='n'>2</td><td class='n'>4</td><td class='n'>5</td>" \
           "<td class='n'>6</td>" in html_text  # files, min / median / max values per file
    assert "<li><code>caption_feature_sentence</code> (2 distinct in 2 files, median 15 words): <q>A dark" in html_text
    summary = summarise(load_records(rich_corpus)[0])
    assert summary["categorical"]["beats"]["type"] == "number_list" and summary["categorical"]["beats"]["counts"] == {}
    assert summary["categorical"]["caption_feature_sentence"]["type"] == "text"


def test_every_cell_state_has_a_legend_entry(corpus):
    html_text, _, _ = _render(corpus)
    legend = re.search(r'<p class="legend">(.*?)</p>', html_text).group(1)
    from mirflow.report import _STATE_MARK
    for state, mark in _STATE_MARK.items():
        assert f'<span class="{state}">{mark} ' in legend, state


def test_total_duration_formats_and_timing_table(rich_corpus):
    from mirflow.stats import audio_totals, family_timing, write_outputs

    records, _ = load_records(rich_corpus)
    assert audio_totals(records) == {"duration_s": 3725.5, "files_with_duration": 2, "formats": {"flac": 1, "mp3": 1}}
    timing = family_timing(rich_corpus)
    assert timing == {"total_s": 271.0, "families": {
        "timbral": {"jobs": 2, "total_s": 250.0, "mean_s": 125.0, "max_s": 150.0, "slowest": "t1"},
        "rhythm": {"jobs": 2, "total_s": 21.0, "mean_s": 10.5, "max_s": 11.0, "slowest": "t1"}}}
    html_text = (rich_corpus / "stats" / "report_tracks.html")
    write_outputs(rich_corpus)
    html_text = html_text.read_text(encoding="utf-8")
    assert '<div class="v">1 h 02 min</div><div class="k">of audio in 2 file(s)</div>' in html_text
    assert "Source formats (codec of the input file): flac 1, mp3 1" in html_text
    assert ("<tr><td><code>timbral</code></td><td class='n'>2</td><td class='n'>4 min 10 s</td>"
            "<td class='n'>92.3 %</td><td class='n'>125.0</td><td class='n'>150.0</td><td>t1</td></tr>") in html_text
    assert '<section id="timing">' in html_text


def test_report_renders_in_headless_chromium(rich_corpus, tmp_path):
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium) to render the report in a real browser")
    from mirflow.stats import write_outputs

    html_path = write_outputs(rich_corpus)["html"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", f"file://{html_path}"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    # What the browser parsed (not the source text): every section, the timing table, no charted captions.
    for anchor in ("overview", "timing", "completeness", "tempo-key", "categories", "features"):
        assert f'<section id="{anchor}">' in dom, anchor
    assert "4 min 10 s" in dom and 'aria-label="caption_feature_sentence"' not in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1280,1600", f"--screenshot={shot}", f"file://{html_path}"],
                   capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1280 and len(png) > 20_000
