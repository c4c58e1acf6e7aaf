"""The feature catalogue: the single source of truth for every key mirflow writes.

``catalogue.yaml`` (next to this module) lists each key with its family, type,
unit, expected range, description and producer. The merge validates values
against it, the feature reference (docs/features.md) is generated from it
(``python -m mirflow.catalogue --readme docs/features.md``), and statistics take their
units from it. Per-stem keys are templates (``lufs_{stem}``) expanded over the
entry's ``stems``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")
TYPES = ("number", "integer", "string", "object", "array")
#: What a family's keys are in a training crop's .INFO: computed on the crop's own audio and grids,
#: copied from the track (listed in the crop's _provenance.copied_from_track), or left out.
CROP_POLICIES = ("computed", "copied", "omitted")
#: Keys that exist only in crop .INFO files (position, boundaries, grids inside the crop).
CROP_FAMILY = "crop"
#: Keys the merge resolves from other keys (mirflow.resolved); no rule writes them.
RESOLVED_FAMILY = "resolved"
README_BEGIN = "<!-- BEGIN FEATURE TABLE (generated from scripts/mirflow/catalogue.yaml; do not edit) -->"
README_END = "<!-- END FEATURE TABLE -->"
PARAMS_BEGIN = "<!-- BEGIN PARAMETER TABLE (generated from the families' parameter classes; do not edit) -->"
PARAMS_END = "<!-- END PARAMETER TABLE -->"


@dataclass(frozen=True)
class Entry:
    """One catalogue entry (possibly a per-stem template)."""

    key: str
    family: str
    type: str
    unit: str
    range: tuple[float, float] | None
    description: str
    producer: str
    stems: tuple[str, ...] = ()

    @property
    def is_template(self) -> bool:
        return "{stem}" in self.key

    def concrete_keys(self) -> list[str]:
        """The keys this entry stands for (one per stem for templates)."""
        if not self.is_template:
            return [self.key]
        return [self.key.format(stem=s) for s in self.stems]


class CatalogueError(ValueError):
    """The catalogue file itself is malformed."""


def _parse_entry(raw: dict[str, Any], index: int) -> Entry:
    required = ("key", "family", "type", "unit", "description", "producer")
    missing = [f for f in required if f not in raw]
    if missing:
        raise CatalogueError(f"catalogue entry #{index} ({raw.get('key')}): missing {missing}")
    unknown = set(raw) - set(required) - {"range", "stems"}
    if unknown:
        raise CatalogueError(f"catalogue entry {raw['key']}: unknown fields {sorted(unknown)}")
    if raw["type"] not in TYPES:
        raise CatalogueError(f"catalogue entry {raw['key']}: type must be one of {TYPES}")
    rng = raw.get("range")
    if rng is not None:
        if len(rng) != 2 or rng[0] > rng[1]:
            raise CatalogueError(f"catalogue entry {raw['key']}: range must be [low, high]")
        rng = (float(rng[0]), float(rng[1]))
    stems = tuple(raw.get("stems") or ())
    if ("{stem}" in raw["key"]) != bool(stems):
        raise CatalogueError(f"catalogue entry {raw['key']}: a {{stem}} template needs a stems list and vice versa")
    return Entry(raw["key"], raw["family"], raw["type"], str(raw["unit"]), rng,
                 " ".join(str(raw["description"]).split()), str(raw["producer"]), stems)


class Catalogue:
    """All entries, with lookup by concrete key and by family, and each family's crop policy."""

    def __init__(self, entries: list[Entry], source_sha256: str = "", crop_policy: dict[str, str] | None = None):
        self.entries = entries
        self.source_sha256 = source_sha256
        self.crop_policy = dict(crop_policy or {})
        self._by_key: dict[str, Entry] = {}
        for entry in entries:
            for key in entry.concrete_keys():
                if key in self._by_key:
                    raise CatalogueError(f"key {key} is listed twice in the catalogue")
                self._by_key[key] = entry

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def entry(self, key: str) -> Entry:
        return self._by_key[key]

    def keys(self) -> list[str]:
        return list(self._by_key)

    def keys_for_family(self, family: str) -> list[str]:
        return [k for k, e in self._by_key.items() if e.family == family]

    def stem_keys(self, family: str, stem: str) -> list[str]:
        """Concrete keys of a per-stem family for one stem."""
        return [e.key.format(stem=stem) for e in self.entries
                if e.family == family and e.is_template and stem in e.stems]

    def families(self) -> list[str]:
        return sorted({e.family for e in self.entries})

    def check_value(self, key: str, value: Any) -> str | None:
        """Validate one value.

        Returns
        -------
        str or None
            A warning when a numeric value lies outside the expected range (the
            value itself is kept unchanged), else None.

        Raises
        ------
        KeyError
            If the key is not catalogued (a bug: every key must be documented).
        TypeError
            If the value does not have the catalogued type.
        """
        if key not in self._by_key:
            raise KeyError(f"key '{key}' is not in the feature catalogue ({CATALOGUE_PATH.name})")
        entry = self._by_key[key]
        ok = {
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "string": isinstance(value, str),
            "object": isinstance(value, dict),
            "array": isinstance(value, list),
        }[entry.type]
        if not ok:
            raise TypeError(f"key '{key}' must be of type {entry.type}, got {type(value).__name__} ({value!r})")
        if entry.range is not None and entry.type in ("number", "integer"):
            low, high = entry.range
            if not low <= value <= high:
                return f"{key}={value} is outside the expected range [{low:g}, {high:g}] {entry.unit}".rstrip()
        return None


@lru_cache(maxsize=4)
def load_catalogue(path: str | None = None) -> Catalogue:
    """Load and check the catalogue (cached)."""
    p = Path(path) if path else CATALOGUE_PATH
    text = p.read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or []
    policies: dict[str, str] = {}
    entries = []
    for i, item in enumerate(raw):
        if "key" in item:
            entries.append(_parse_entry(item, i))
            continue
        if set(item) != {"family", "crop"} or item["crop"] not in CROP_POLICIES:
            raise CatalogueError(f"catalogue item #{i}: a family declaration has exactly `family` and `crop` "
                                 f"(one of {CROP_POLICIES}), got {item}")
        policies[item["family"]] = item["crop"]
    undeclared = sorted({e.family for e in entries} - set(policies) - {CROP_FAMILY})
    if undeclared:
        raise CatalogueError(f"families without a crop policy declaration: {undeclared}")
    return Catalogue(entries, hashlib.sha256(text.encode()).hexdigest(), policies)


def _fmt_range(entry: Entry) -> str:
    if entry.range is None:
        return ""
    return f"{entry.range[0]:g} to {entry.range[1]:g}"


def markdown_table(catalogue: Catalogue | None = None) -> str:
    """The README feature reference, one table per family, generated from the catalogue."""
    cat = catalogue or load_catalogue()
    lines = []
    for fam in sorted({e.family for e in cat.entries}, key=lambda f: [e.family for e in cat.entries].index(f)):
        policy = {"computed": "computed on the crop", "copied": "copied from the track (marked as copied)",
                  "omitted": "not in crops"}.get(cat.crop_policy.get(fam, ""), "")
        where = ("crop .INFO files only" if fam == CROP_FAMILY else
                 "resolved by the merge from the keys named below, see `_provenance.resolved`; in crops: resolved "
                 "from the crop's keys" if fam == RESOLVED_FAMILY else f"`features/{fam}.json`; in crops: {policy}")
        lines += [f"#### `{fam}` ({where})", "",
                  "| key | type | unit | expected range | description | producer |",
                  "|---|---|---|---|---|---|"]
        for e in cat.entries:
            if e.family != fam:
                continue
            key = f"`{e.key}`" + (f" ({', '.join(e.stems)})" if e.is_template else "")
            cells = [key, e.type, e.unit or "", _fmt_range(e), e.description, e.producer]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def parameter_table() -> str:
    """The configuration reference of the typed families: one table per config section, from the classes."""
    from .params import reference_rows
    from .registry import FAMILIES

    lines = []
    sections: dict[str, tuple[type, list[str]]] = {}
    for fam in FAMILIES.values():
        if fam.params is not None:
            sections.setdefault(fam.settings, (fam.params, []))[1].append(fam.name)
    for section, (cls, names) in sections.items():
        families = ", ".join(f"`{n}`" for n in names)
        lines += [f"#### `{section}` (families {families}; `{cls.__module__}.{cls.__name__}`)", ""]
        rows = reference_rows(cls)
        # A class without fields declares that the section takes no keys (the algorithm has no free choice).
        lines += ["| key | default | unit | allowed | description |", "|---|---|---|---|---|"] if rows else \
            ["No parameters: the section accepts no keys."]
        for row in rows:
            cells = [f"`{row['key']}`", f"`{json.dumps(row['default'])}`", row["unit"], row["allowed"], row["doc"]]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _replace_between(text: str, begin: str, end_marker: str, body: str) -> str:
    start = text.find(begin)
    end = text.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"README lacks the markers {begin!r} ... {end_marker!r}")
    return text[: start + len(begin)] + "\n\n" + body + "\n" + text[end:]


def render_readme(readme_text: str, catalogue: Catalogue | None = None) -> str:
    """Return the README text with the generated tables between the markers (the parameter table when present)."""
    text = _replace_between(readme_text, README_BEGIN, README_END, markdown_table(catalogue))
    if PARAMS_BEGIN in text:
        text = _replace_between(text, PARAMS_BEGIN, PARAMS_END, parameter_table())
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", help="rewrite the feature table in this README")
    parser.add_argument("--check", action="store_true", help="with --readme: fail if it is out of date")
    args = parser.parse_args(argv)
    if not args.readme:
        sys.stdout.write(markdown_table())
        return 0
    path = Path(args.readme)
    old = path.read_text(encoding="utf-8")
    new = render_readme(old)
    if args.check:
        if old != new:
            print(f"{path}: feature table is out of date; run `python -m mirflow.catalogue --readme {path}`")
            return 1
        return 0
    if new != old:
        path.write_text(new, encoding="utf-8")
        print(f"updated the feature table in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
