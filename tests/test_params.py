"""mirflow.params: typed parameters are the one source of defaults, validation, schema and provenance."""
import re
from dataclasses import FrozenInstanceError, dataclass

import pytest

from mirflow.errors import ConfigError
from mirflow.params import as_dict, defaults, from_config, param, reference_rows, schema_for


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


# ------------------------------------------------------------ lists, nested sections and named entries

from mirflow.params import fill_defaults, mapping, section  # noqa: E402


@dataclass(frozen=True)
class Limits:
    low: float = param(-20.0, unit="LUFS", doc="Quiet below")
    high: float = param(-12.0, unit="LUFS", doc="Loud from")


@dataclass(frozen=True)
class Prompt:
    template: str = param("", doc="Prompt text")
    max_tokens: int = param(400, minimum=1, doc="Token limit")


@dataclass(frozen=True)
class Nested:
    bpm_classes: tuple = param((90, 120), unit="BPM", minimum=0, length=2, doc="Class edges")
    styles: tuple = param(("a", "b"), choices=("a", "b", "c"), doc="Styles")
    device: str = param("auto", pattern=r"auto|cpu|cuda(:[0-9]+)?", doc="Device")
    system: str | None = param(None, kind=str, nullable=True, doc="System prompt (null: the model's)")
    loudness: Limits = section(Limits, doc="Loudness words")
    prompts: dict = mapping(Prompt, {"full": {"template": "Describe.", "max_tokens": 500}}, doc="Prompts")


def test_nested_defaults_as_plain_data_and_typed_access():
    plain = {"bpm_classes": [90, 120], "styles": ["a", "b"], "device": "auto", "system": None,
             "loudness": {"low": -20.0, "high": -12.0},
             "prompts": {"full": {"template": "Describe.", "max_tokens": 500}}}
    assert defaults(Nested) == plain == as_dict(from_config(Nested, None, where="n"))
    got = from_config(Nested, {"bpm_classes": [80, 130], "loudness": {"high": -10}, "system": "Be brief.",
                               "prompts": {"short": {"template": "Genre?"}}}, where="n")
    assert got.bpm_classes == (80, 130) and got.loudness == Limits(high=-10.0) and got.system == "Be brief."
    # a configured mapping replaces the default entries; an entry's omitted keys take their defaults
    assert dict(got.prompts) == {"short": Prompt(template="Genre?")}
    with pytest.raises(TypeError):
        got.prompts["x"] = Prompt()  # read-only


@pytest.mark.parametrize("section_, key", [
    ({"bpm_classes": [90]}, "n.bpm_classes"),                      # wrong length
    ({"bpm_classes": [90, -1]}, "n.bpm_classes[1]"),               # item out of range
    ({"styles": ["a", "z"]}, "n.styles[1]"),                       # item not a choice
    ({"styles": "a"}, "n.styles"),                                 # a string is not a list
    ({"device": "gpu"}, "n.device"),                               # pattern
    ({"loudness": {"hgh": 1}}, "n.loudness.hgh"),                  # unknown nested key
    ({"loudness": 3}, "n.loudness"),                               # not a mapping
    ({"prompts": {"Bad Name": {}}}, "n.prompts"),                  # entry name
    ({"prompts": {"x": {"max_tokens": 0}}}, "n.prompts.x.max_tokens"),
])
def test_nested_bad_values_name_the_dotted_key(section_, key):
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'") + "|" + re.escape(key)):
        from_config(Nested, section_, where="n")


def test_nested_schema_validates_like_from_config():
    jsonschema = pytest.importorskip("jsonschema")
    schema = schema_for(Nested)
    jsonschema.validate({"bpm_classes": [80, 130], "loudness": {"high": -10}, "prompts": {"x": {"template": "?"}}},
                        schema)
    assert schema["properties"]["loudness"]["properties"]["low"]["default"] == -20.0
    for bad in ({"bpm_classes": [90]}, {"styles": ["z"]}, {"device": "gpu"}, {"loudness": {"hgh": 1}},
                {"prompts": {"Bad Name": {}}}, {"prompts": {"x": {"max_tokens": 0}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_fill_defaults_fills_nested_sections_key_by_key():
    class Fam:
        settings, params = "n", Nested

    filled = fill_defaults({"n": {"loudness": {"high": -10}, "prompts": {"x": {"template": "?"}}}}, [Fam])["n"]
    assert filled["loudness"] == {"low": -20.0, "high": -10}
    assert filled["prompts"] == {"x": {"template": "?", "max_tokens": 400}}
    assert filled["bpm_classes"] == [90, 120]


def test_reference_rows_use_dotted_keys():
    keys = [r["key"] for r in reference_rows(Nested)]
    assert keys == ["bpm_classes", "styles", "device", "system", "loudness.low", "loudness.high", "prompts",
                    "prompts.<name>.template", "prompts.<name>.max_tokens"]
    assert reference_rows(Nested)[0]["allowed"] == "a list of 2 items, each an integer >= 0 (BPM)"
