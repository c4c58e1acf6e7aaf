"""mirflow.params: typed parameters are the one source of defaults, validation, schema and provenance."""
from collections.abc import Mapping
from dataclasses import FrozenInstanceError, dataclass

import pytest

from mirflow.errors import ConfigError
from mirflow.params import (
    DEVICE_PATTERN,
    as_dict,
    defaults,
    fill_defaults,
    from_config,
    mapping,
    param,
    reference_rows,
    schema_for,
    section,
)


@dataclass(frozen=True)
class Demo:
    frame_length: int = param(2048, unit="samples", minimum=64, doc="FFT frame length")
    window: str = param("hann", choices=("hann", "hamming"), doc="Window function")
    gain_db: float = param(0.0, unit="dB", minimum=-20.0, maximum=20.0, doc="Gain before analysis")
    segment_s: float | None = param(None, unit="s", minimum=1.0, nullable=True, doc="Segment length (null: whole)")
    enabled: bool = param(True, doc="Switch")
    block_s: float = param(0.4, unit="s", above=0.0, doc="Block length")


def test_omitted_section_and_keys_take_the_defaults():
    assert as_dict(from_config(Demo, None, where="demo")) == {
        "frame_length": 2048, "window": "hann", "gain_db": 0.0, "segment_s": None, "enabled": True, "block_s": 0.4}
    got = from_config(Demo, {"frame_length": 4096, "gain_db": 3}, where="demo")
    assert got.frame_length == 4096 and got.window == "hann"
    # An integer is a valid float and is stored as one (so provenance JSON keeps the float type).
    assert got.gain_db == 3.0 and isinstance(got.gain_db, float)
    with pytest.raises(FrozenInstanceError):
        got.frame_length = 1


def test_as_dict_keeps_declaration_order():
    assert list(as_dict(Demo())) == ["frame_length", "window", "gain_db", "segment_s", "enabled", "block_s"]
    assert defaults(Demo) == as_dict(Demo())


@pytest.mark.parametrize("section, key, allowed", [
    ({"frame_length": 32}, "demo.frame_length", "an integer >= 64 (samples)"),        # below the range
    ({"frame_length": 2048.5}, "demo.frame_length", "an integer >= 64"),             # wrong type
    ({"frame_length": True}, "demo.frame_length", "an integer"),                     # a YAML switch for a number
    ({"window": "boxcar"}, "demo.window", "one of 'hann', 'hamming'"),               # not a choice
    ({"gain_db": 21}, "demo.gain_db", "a number >= -20.0 <= 20.0 (dB)"),             # above the range
    ({"enabled": 1}, "demo.enabled", "a boolean"),                                   # a number for a switch
    ({"window": None}, "demo.window", "one of"),                                     # null where not nullable
    ({"block_s": 0}, "demo.block_s", "a number > 0.0 (s)"),                          # exclusive bound
])
def test_bad_values_name_the_key_and_what_is_allowed(section, key, allowed):
    with pytest.raises(ConfigError) as err:
        from_config(Demo, section, where="demo")
    assert f"'{key}'" in str(err.value) and allowed in str(err.value)


def test_null_is_accepted_only_where_declared():
    assert from_config(Demo, {"segment_s": None}, where="demo").segment_s is None
    assert from_config(Demo, {"segment_s": 5}, where="demo").segment_s == 5.0


def test_unknown_key_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"demo\.hop.*known keys of 'demo': frame_length, window"):
        from_config(Demo, {"hop": 3}, where="demo")


def test_schema_section_validates_like_from_config():
    jsonschema = pytest.importorskip("jsonschema")
    schema = schema_for(Demo)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["frame_length"] == {
        "type": "integer", "minimum": 64, "default": 2048, "description": "FFT frame length (samples)"}
    assert schema["properties"]["segment_s"]["type"] == ["number", "null"]
    jsonschema.validate({"frame_length": 4096, "segment_s": None}, schema)
    for bad in ({"frame_length": 32}, {"window": "boxcar"}, {"gain_db": 21}, {"hop": 3}, {"block_s": 0}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_reference_rows_document_every_parameter():
    rows = reference_rows(Demo)
    assert [r["key"] for r in rows] == ["frame_length", "window", "gain_db", "segment_s", "enabled", "block_s"]
    assert rows[0] == {"key": "frame_length", "default": 2048, "unit": "samples",
                       "allowed": "an integer >= 64 (samples)", "doc": "FFT frame length"}


def test_a_field_without_param_metadata_is_refused():
    @dataclass(frozen=True)
    class Plain:
        x: int = 1
    with pytest.raises(TypeError, match="'x'"):
        schema_for(Plain)


@dataclass(frozen=True)
class Peaks:
    frame_size: int = param(4096, unit="samples", minimum=2, doc="Frame length")
    window: str = param("hann", choices=("hann", "blackmanharris62"), doc="Window")


@dataclass(frozen=True)
class Nested:
    stems: tuple = param(("bass", "other"), choices=("bass", "other", "vocals"), min_items=1, doc="Stems used")
    band_hz: tuple = param((20.0, 120.0), unit="Hz", above=0.0, length=2, doc="Band edges")
    fraction: float = param(0.999, above=0.0, below=1.0, doc="Share of Nyquist")
    chroma: Peaks = section(Peaks(frame_size=8192, window="blackmanharris62"), doc="Chroma peaks")
    hpcp: Peaks = section(Peaks(), doc="HPCP peaks")


def test_lists_and_nested_sections_round_trip_in_config_form():
    got = from_config(Nested, {"stems": ["vocals"], "band_hz": [30, 100], "chroma": {"frame_size": 2048}},
                      where="demo")
    assert got.stems == ("vocals",) and got.band_hz == (30.0, 100.0) and isinstance(got.band_hz[0], float)
    # A nested mapping naming some keys keeps the other keys of THAT field's defaults (chroma != hpcp).
    assert got.chroma == Peaks(frame_size=2048, window="blackmanharris62") and got.hpcp == Peaks()
    assert as_dict(got) == {"stems": ["vocals"], "band_hz": [30.0, 100.0], "fraction": 0.999,
                            "chroma": {"frame_size": 2048, "window": "blackmanharris62"},
                            "hpcp": {"frame_size": 4096, "window": "hann"}}
    assert defaults(Nested) == as_dict(Nested())
    assert defaults(Nested)["stems"] == ["bass", "other"]


@pytest.mark.parametrize("section, key", [
    ({"stems": []}, "demo.stems"),                        # fewer than min_items
    ({"stems": ["drums"]}, "demo.stems"),                 # an item not a choice
    ({"stems": "bass"}, "demo.stems"),                    # a string for a list
    ({"band_hz": [20.0, 120.0, 500.0]}, "demo.band_hz"),  # wrong length
    ({"band_hz": [0.0, 120.0]}, "demo.band_hz"),          # an item out of range
    ({"fraction": 1.0}, "demo.fraction"),                 # exclusive upper bound
    ({"chroma": {"frame_size": 1}}, "demo.chroma.frame_size"),
    ({"chroma": 3}, "demo.chroma"),
])
def test_bad_list_or_nested_values_name_the_dotted_key(section, key):
    with pytest.raises(ConfigError) as err:
        from_config(Nested, section, where="demo")
    assert f"'{key}'" in str(err.value)
    with pytest.raises(ConfigError, match=r"demo\.chroma\.hop"):
        from_config(Nested, {"chroma": {"hop": 1}}, where="demo")


def test_nested_schema_and_reference_rows():
    jsonschema = pytest.importorskip("jsonschema")
    schema = schema_for(Nested)
    assert schema["properties"]["band_hz"] == {
        "type": "array", "items": {"type": "number", "exclusiveMinimum": 0.0}, "minItems": 2, "maxItems": 2,
        "default": [20.0, 120.0], "description": "Band edges (Hz)"}
    assert schema["properties"]["chroma"]["properties"]["frame_size"]["default"] == 8192
    assert schema["properties"]["hpcp"]["properties"]["frame_size"]["default"] == 4096
    jsonschema.validate({"stems": ["vocals"], "chroma": {"window": "hann"}}, schema)
    for bad in ({"stems": []}, {"band_hz": [1.0]}, {"fraction": 1.0}, {"chroma": {"hop": 1}},
                {"hpcp": {"window": "boxcar"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    rows = {r["key"]: r for r in reference_rows(Nested)}
    assert list(rows) == ["stems", "band_hz", "fraction", "chroma.frame_size", "chroma.window",
                          "hpcp.frame_size", "hpcp.window"]
    assert rows["band_hz"]["allowed"] == "a list of 2 numbers > 0.0 (Hz)"
    assert rows["stems"]["allowed"] == "a list of at least 1 values, each one of 'bass', 'other', 'vocals'"
    assert rows["chroma.window"]["default"] == "blackmanharris62"


def test_fill_defaults_fills_nested_sections_key_by_key():
    from types import SimpleNamespace

    from mirflow.params import fill_defaults
    fam = SimpleNamespace(settings="demo", params=Nested)
    filled = fill_defaults({"demo": {"chroma": {"frame_size": 2048}, "fraction": 0.5}}, [fam])["demo"]
    assert filled["chroma"] == {"frame_size": 2048, "window": "blackmanharris62"}
    assert filled["hpcp"] == {"frame_size": 4096, "window": "hann"} and filled["fraction"] == 0.5


# ------------------------------------------------------------ string patterns, nullable strings, named entries

@dataclass(frozen=True)
class Prompt:
    template: str = param("", doc="Prompt text")
    max_tokens: int = param(400, minimum=1, doc="Token limit")


@dataclass(frozen=True)
class WithEntries:
    device: str = param("auto", pattern=DEVICE_PATTERN, doc="Device")
    system: str | None = param(None, kind=str, nullable=True, doc="System prompt (null: the model's)")
    prompts: Mapping[str, Prompt] = mapping(Prompt, {"full": {"template": "Describe.", "max_tokens": 500}},
                                            doc="Prompts")


def test_named_entries_merge_over_the_defaults_by_name():
    plain = {"device": "auto", "system": None, "prompts": {"full": {"template": "Describe.", "max_tokens": 500}}}
    assert defaults(WithEntries) == plain == as_dict(from_config(WithEntries, None, where="w"))
    got = from_config(WithEntries, {"device": "cuda:1", "system": "Be brief.",
                                    "prompts": {"short": {"template": "Genre?"}}}, where="w")
    assert got.device == "cuda:1" and got.system == "Be brief."
    # a new name takes the class defaults for what it omits; the default entry stays
    assert dict(got.prompts) == {"full": Prompt("Describe.", 500), "short": Prompt(template="Genre?")}
    # an entry of a default name changes only the keys it gives; null drops a name
    assert dict(from_config(WithEntries, {"prompts": {"full": {"max_tokens": 9}}}, where="w").prompts) == {
        "full": Prompt("Describe.", 9)}
    assert dict(from_config(WithEntries, {"prompts": {"full": None, "x": {"template": "?"}}}, where="w").prompts) \
        == {"x": Prompt("?")}
    assert from_config(WithEntries, plain, where="w") == WithEntries()
    with pytest.raises(TypeError):
        got.prompts["x"] = Prompt()  # read-only like the rest of the object


def test_a_config_cannot_drop_every_entry_of_a_mapping_that_needs_one():
    from mirflow.captions.flamingo import FlamingoParams

    with pytest.raises(ConfigError, match=r"'captions_flamingo.prompts' leaves 0 entries; at least 1 needed"):
        from_config(FlamingoParams, {"prompts": dict.fromkeys(FlamingoParams().prompts)}, where="captions_flamingo")
    one = next(iter(FlamingoParams().prompts))
    kept = from_config(FlamingoParams, {"prompts": {n: None for n in FlamingoParams().prompts if n != one}},
                       where="captions_flamingo")
    assert list(kept.prompts) == [one]


@pytest.mark.parametrize("section_, key", [
    ({"device": "gpu"}, "'w.device'"),                             # not matching the pattern
    ({"system": 3}, "'w.system'"),                                 # a nullable string is still a string
    ({"prompts": {"Bad Name": {}}}, "not usable in a key"),        # entry name
    ({"prompts": ["full"]}, "'w.prompts'"),                        # not a mapping
    ({"prompts": {"x": {"max_tokens": 0}}}, "'w.prompts.x.max_tokens'"),
    ({"prompts": {"x": {"tokens": 3}}}, "w.prompts.x.tokens"),     # unknown key of an entry
])
def test_bad_entries_and_patterns_name_the_key(section_, key):
    with pytest.raises(ConfigError) as err:
        from_config(WithEntries, section_, where="w")
    assert key in str(err.value)


def test_entries_schema_and_reference_rows():
    jsonschema = pytest.importorskip("jsonschema")
    schema = schema_for(WithEntries)
    jsonschema.validate({"device": "cpu", "system": None, "prompts": {"x": {"template": "?"}, "full": None}}, schema)
    for bad in ({"device": "gpu"}, {"prompts": {"Bad Name": {}}}, {"prompts": {"x": {"max_tokens": 0}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    rows = reference_rows(WithEntries)
    assert [r["key"] for r in rows] == ["device", "system", "prompts", "prompts.<name>.template",
                                        "prompts.<name>.max_tokens"]
    assert rows[2]["default"] == ["full"] and "matching" in rows[0]["allowed"]


def test_fill_defaults_fills_each_given_entry():
    class Fam:
        settings, params = "w", WithEntries

    assert fill_defaults({}, [Fam])["w"]["prompts"] == {"full": {"template": "Describe.", "max_tokens": 500}}
    filled = fill_defaults({"w": {"prompts": {"x": {"template": "?"}, "full": {"max_tokens": 9}}}}, [Fam])["w"]
    assert filled["prompts"] == {"full": {"template": "Describe.", "max_tokens": 9},
                                 "x": {"template": "?", "max_tokens": 400}}
    # a dropped entry stays null in the filled section, so building the object from it drops it again
    dropped = fill_defaults({"w": {"prompts": {"full": None}}}, [Fam])["w"]
    assert dropped["prompts"] == {"full": None} and dict(from_config(WithEntries, dropped, where="w").prompts) == {}
