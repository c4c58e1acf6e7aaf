"""The README stays short and reads top-down, and every relative link in the documentation resolves."""
import re

import pytest

from conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def _relative_links(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_slug_matches_github():
    assert _slug("Job layout (jobs per track)") == "job-layout-jobs-per-track"
    assert _slug("100,000 tracks: batches") == "100000-tracks-batches"
    assert _slug("`loudness` (`features/loudness.json`)") == "loudness-featuresloudnessjson"


def test_readme_is_short_and_reads_top_down():
    size = len(README.read_bytes())
    assert size < 20_000, f"README.md is {size} bytes; move detail into docs/ (issue 15: under about 20 KB)"
    headings = re.findall(r"^## (.+)$", FENCE.sub("", README.read_text(encoding="utf-8")), re.M)
    order = ["Quick start", "Your own music", "What you get", "Configuration", "Scale and cluster", "Measured",
             "Tests", "Layout", "Documentation"]
    assert headings == order, f"README sections {headings} should be {order}"


@pytest.mark.parametrize("path", [README, *DOCS, REPO / "models" / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    broken = []
    for target in _relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{path.name}: broken links: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in _relative_links(README)}
    assert DOCS and not [p.name for p in DOCS if p.resolve() not in linked]
