"""Music Flamingo through llama.cpp's mtmd API, exercised end to end with a tiny random-weight pair:
a Qwen2 text model (SmolLM2's tokenizer) and a Music Flamingo audio projector ("musicflamingo" Whisper
encoder + MLP), both written here in the real GGUF format. The real Music Flamingo weights (several GB) are
not used: what is tested is every step up to and through llama.cpp, not caption quality."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import as_signal
from mirflow.captions import flamingo as F
from mirflow.captions.llm import CaptionModelError
from mirflow.errors import ConfigError
from mirflow.params import from_config

mtmd = pytest.importorskip("llama_cpp.mtmd_cpp")

# ------------------------------------------------------------------ a minimal GGUF reader/writer

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STR, ARR, U32, F32, BOOL = 8, 9, 4, 6, 7


def read_gguf_metadata(path: Path, limit: int = 64 << 20) -> dict:
    """Key -> (GGUF type, value) of a GGUF file's metadata (arrays as (element type, list))."""
    data = path.read_bytes()[:limit]
    pos = 4

    def take(fmt):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def value(kind):
        nonlocal pos
        if kind == STR:
            n = take("<Q")
            pos += n
            return data[pos - n:pos].decode("utf-8")
        if kind == ARR:
            element, n = take("<I"), take("<Q")
            return element, [value(element) for _ in range(n)]
        return take(_SCALAR[kind])

    assert data[:4] == b"GGUF"
    _version, _n_tensors, n_kv = take("<I"), take("<Q"), take("<Q")
    out = {}
    for _ in range(n_kv):
        key = value(STR)
        kind = take("<I")
        out[key] = (kind, value(kind))
    return out


def _encode(kind, value) -> bytes:
    if kind == STR:
        raw = value.encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw
    if kind == ARR:
        element, items = value
        return struct.pack("<IQ", element, len(items)) + b"".join(_encode(element, x) for x in items)
    return struct.pack(_SCALAR[kind], value)


def write_gguf(path: Path, metadata: dict, tensors: dict, align: int = 32) -> None:
    """GGUF v3 with F32 tensors; numpy shape (rows, cols) is ggml (ne0=cols, ne1=rows)."""
    head = bytearray(b"GGUF") + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, (kind, value) in metadata.items():
        head += _encode(STR, key) + struct.pack("<I", kind) + _encode(kind, value)
    blobs, offset = [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        head += _encode(STR, name) + struct.pack("<I", array.ndim)
        head += b"".join(struct.pack("<Q", d) for d in array.shape[::-1]) + struct.pack("<IQ", 0, offset)
        blob = array.tobytes() + b"\0" * ((-array.nbytes) % align)
        blobs.append(blob)
        offset += len(blob)
    head += b"\0" * ((-len(head)) % align)
    with open(path, "wb") as out:
        out.write(head)
        for blob in blobs:
            out.write(blob)


CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a music expert.<|im_end|>\\n' }}"
    "{% endif %}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def write_tiny_flamingo(tokenizer_gguf: Path, text_path: Path, mmproj_path: Path, n_embd: int = 64) -> None:
    """A random Qwen2 text model with ``tokenizer_gguf``'s tokenizer, and a matching Music Flamingo projector
    (Whisper encoder: conv1d 128 mel -> 32, 1500 positions, 1 block; 2-layer GELU MLP to ``n_embd``)."""
    rng = np.random.default_rng(0)

    def rand(*shape, scale=0.05):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    ones = lambda n: np.ones(n, np.float32)  # noqa: E731
    tokenizer = {k: v for k, v in read_gguf_metadata(tokenizer_gguf).items()
                 if k.startswith("tokenizer.") and k != "tokenizer.chat_template"}
    n_vocab = len(tokenizer["tokenizer.ggml.tokens"][1][1])
    d, ff, layers, heads, kv_heads = n_embd, 2 * n_embd, 2, 4, 2
    d_kv = d // heads * kv_heads
    meta = {"general.architecture": (STR, "qwen2"), "general.name": (STR, "tiny random qwen2 (test)"),
            "general.file_type": (U32, 0), "qwen2.context_length": (U32, 8192), "qwen2.embedding_length": (U32, d),
            "qwen2.block_count": (U32, layers), "qwen2.feed_forward_length": (U32, ff),
            "qwen2.attention.head_count": (U32, heads), "qwen2.attention.head_count_kv": (U32, kv_heads),
            "qwen2.rope.freq_base": (F32, 10000.0), "qwen2.attention.layer_norm_rms_epsilon": (F32, 1e-6),
            **tokenizer, "tokenizer.chat_template": (STR, CHAT_TEMPLATE)}
    # untied output: a tied random model only repeats its last input token
    tensors = {"token_embd.weight": rand(n_vocab, d, scale=1.0), "output_norm.weight": ones(d),
               "output.weight": rand(n_vocab, d, scale=0.3)}
    for i in range(layers):
        b = f"blk.{i}."
        tensors.update({
            b + "attn_norm.weight": ones(d), b + "attn_q.weight": rand(d, d), b + "attn_q.bias": rand(d),
            b + "attn_k.weight": rand(d_kv, d), b + "attn_k.bias": rand(d_kv), b + "attn_v.weight": rand(d_kv, d),
            b + "attn_v.bias": rand(d_kv), b + "attn_output.weight": rand(d, d), b + "ffn_norm.weight": ones(d),
            b + "ffn_gate.weight": rand(ff, d), b + "ffn_up.weight": rand(ff, d), b + "ffn_down.weight": rand(d, ff)})
    write_gguf(text_path, meta, tensors)

    ad, aff, n_mel = 32, 64, 128
    meta = {"general.architecture": (STR, "clip"), "general.file_type": (U32, 0),
            "clip.has_audio_encoder": (BOOL, True), "clip.has_vision_encoder": (BOOL, False),
            "clip.projector_type": (STR, "musicflamingo"), "clip.audio.projection_dim": (U32, d),
            "clip.audio.embedding_length": (U32, ad), "clip.audio.feed_forward_length": (U32, aff),
            "clip.audio.block_count": (U32, 1), "clip.audio.attention.head_count": (U32, 2),
            "clip.audio.attention.layer_norm_epsilon": (F32, 1e-5), "clip.audio.num_mel_bins": (U32, n_mel)}
    b = "a.blk.0."
    tensors = {
        "a.conv1d.1.weight": rand(ad, n_mel, 3), "a.conv1d.1.bias": rand(ad, 1), "a.conv1d.2.weight": rand(ad, ad, 3),
        "a.conv1d.2.bias": rand(ad, 1), "a.position_embd.weight": rand(1500, ad),
        b + "attn_q.weight": rand(ad, ad), b + "attn_q.bias": rand(ad), b + "attn_k.weight": rand(ad, ad),
        b + "attn_v.weight": rand(ad, ad), b + "attn_v.bias": rand(ad), b + "attn_out.weight": rand(ad, ad),
        b + "attn_out.bias": rand(ad), b + "ln1.weight": ones(ad), b + "ln1.bias": rand(ad),
        b + "ln2.weight": ones(ad), b + "ln2.bias": rand(ad), b + "ffn_up.weight": rand(aff, ad),
        b + "ffn_up.bias": rand(aff), b + "ffn_down.weight": rand(ad, aff), b + "ffn_down.bias": rand(ad),
        "a.post_ln.weight": ones(ad), "a.post_ln.bias": rand(ad),
        "mm.a.mlp.1.weight": rand(d, ad, scale=1.0), "mm.a.mlp.1.bias": rand(d),
        "mm.a.mlp.2.weight": rand(d, d, scale=1.0), "mm.a.mlp.2.bias": rand(d)}
    write_gguf(mmproj_path, meta, tensors)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def tiny_files(smollm2_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flamingo")
    text, mmproj = folder / "tiny-qwen2.gguf", folder / "tiny-musicflamingo.mmproj.gguf"
    write_tiny_flamingo(smollm2_path, text, mmproj)
    return text, mmproj


# one thread: llama.cpp's worker threads spin at barriers, which collapses on a shared, oversubscribed CPU
THREADS = 1
LOAD = {"context_size": 4096, "gpu_layers": 0, "flash_attention": False, "mmproj_gpu": False}
# sampling that spreads over the vocabulary, so that any change of the context changes the text
SAMPLE = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "seed": 7}
PROMPTS = {"full": {"template": "Describe this track.", "max_tokens": 12},
           "genre_mood": {"template": "Genre and mood?", "max_tokens": 12}}


def P(section: dict) -> F.FlamingoParams:
    """The typed parameters of a config section, as runner.compute_family builds them; ``prompts``, when given, are
    exactly the prompts asked (the default ones are dropped, as a config does with null entries)."""
    if "prompts" in section:
        section = {**section, "prompts": {**dict.fromkeys(F.DEFAULT_PROMPTS), **section["prompts"]}}
    return from_config(F.FlamingoParams, section, where="captions_flamingo")


@pytest.fixture(scope="module")
def model(tiny_files):
    loaded = F.load_flamingo(str(tiny_files[0]), str(tiny_files[1]), P(LOAD), threads=THREADS)
    yield loaded
    loaded.close()


def sine(seconds: float, rate: int = 44100, channels: int = 2):
    t = np.arange(int(seconds * rate)) / rate
    return as_signal(np.tile(0.3 * np.sin(2 * np.pi * 220 * t), (channels, 1)), rate)


def noise(seconds: float, rate: int = 22050):
    return as_signal(0.3 * np.random.default_rng(1).standard_normal((1, int(seconds * rate))), rate)


# ------------------------------------------------------------------ the audio path

def test_projector_reports_audio_at_16_khz(model, tiny_files):
    assert model.audio_sample_rate == 16000
    facts = model.describe()
    assert facts["mmproj_file"] == tiny_files[1].name and facts["context_size"] == 4096


def test_audio_is_encoded_once_in_30_s_windows_and_every_prompt_reuses_it(model, monkeypatch):
    calls = []
    original = mtmd.mtmd_helper_eval_chunks

    def counting(*args):
        calls.append(args[4])  # seq id
        return original(*args)

    monkeypatch.setattr(mtmd, "mtmd_helper_eval_chunks", counting)
    params = {**SAMPLE, "prompts": {**PROMPTS, "structure": {"template": "Structure?", "max_tokens": 8}}}
    result = F.caption_track(model, sine(65.0), P(params))
    audio = result.meta["audio"]
    # 65 s -> three 30 s windows (the last padded with silence), 750 embeddings each, evaluated once
    assert (audio["windows"], audio["audio_tokens"]) == (3, 2250) and len(calls) == 1
    prefix_text, _ = F.split_chat(model, {"x": "y"}, None)
    before_marker = prefix_text[: prefix_text.index(mtmd.mtmd_default_marker().decode())]
    text_tokens = (len(model.chat.tokenize(before_marker, add_bos=True))
                   + len(model.chat.tokenize("<sound>", add_bos=False)))
    assert audio["prefix_positions"] == text_tokens + 2250
    assert audio["resampled"] == "44100 Hz -> 16000 Hz (soxr_hq), mono downmix"
    assert audio["analysed_s"] == [0.0, 65.0]
    assert set(result.values) == {"music_flamingo_full", "music_flamingo_genre_mood", "music_flamingo_structure"}
    for key, record in result.meta["captions"].items():
        assert record["generated_tokens"] <= params["prompts"][key.split("_", 2)[2]]["max_tokens"]


def test_each_prompt_sees_exactly_the_audio_prefix_and_reruns_are_identical(model, tiny_files):
    both = F.caption_track(model, sine(12.0), P({**SAMPLE, "prompts": PROMPTS}))
    alone = F.caption_track(model, sine(12.0), P({**SAMPLE, "prompts": {"genre_mood": PROMPTS["genre_mood"]}}))
    # the answer to a prompt does not depend on the prompts answered before it from the same prefix
    assert alone.values["music_flamingo_genre_mood"] == both.values["music_flamingo_genre_mood"]
    # a freshly loaded model gives the same text (fixed seed)
    fresh = F.load_flamingo(str(tiny_files[0]), str(tiny_files[1]), P(LOAD), threads=THREADS)
    try:
        again = F.caption_track(fresh, sine(12.0), P({**SAMPLE, "prompts": PROMPTS}))
    finally:
        fresh.close()
    assert again.values == both.values
    assert all(len(v) > 10 for v in both.values.values())


def test_the_audio_reaches_the_model_and_tracks_do_not_leak_into_each_other(model):
    first = F.caption_track(model, sine(12.0), P({**SAMPLE, "prompts": PROMPTS}))
    other = F.caption_track(model, noise(12.0), P({**SAMPLE, "prompts": PROMPTS}))
    after = F.caption_track(model, sine(12.0), P({**SAMPLE, "prompts": PROMPTS}))
    assert other.values["music_flamingo_full"] != first.values["music_flamingo_full"]
    assert after.values == first.values  # the noise track left nothing behind in the context


def test_long_track_is_cut_to_its_central_excerpt(model):
    result = F.caption_track(model, sine(65.0), P({**SAMPLE, "prompts": PROMPTS, "max_audio_s": 40.0}))
    assert result.meta["audio"]["analysed_s"] == [12.5, 52.5]
    assert result.meta["audio"]["windows"] == 2
    # the padding means floor(duration / 30 s) + 1 windows: exactly 30 s already needs two
    one_token = P({"prompts": {"full": {"template": "x", "max_tokens": 1}}})
    assert F.caption_track(model, sine(29.9), one_token).meta["audio"]["windows"] == 1
    assert F.caption_track(model, sine(30.0), one_token).meta["audio"]["windows"] == 2


def test_context_too_small_for_the_audio_is_a_clear_error(tiny_files):
    small = F.load_flamingo(str(tiny_files[0]), str(tiny_files[1]), P({**LOAD, "context_size": 1024}),
                            threads=THREADS)
    try:
        with pytest.raises(CaptionModelError, match="raise context_size or lower max_audio_s"):
            F.caption_track(small, sine(65.0), P({**SAMPLE, "prompts": PROMPTS}))
    finally:
        small.close()


def test_silent_or_too_short_audio_leaves_every_key_absent(model):
    silent = F.caption_track(model, as_signal(np.zeros((2, 44100 * 5)), 44100), P({"prompts": PROMPTS}))
    assert silent.values == {} and set(silent.absent.values()) == {"silent"}
    short = F.caption_track(model, sine(0.5), P({"prompts": PROMPTS}))
    assert short.values == {} and short.absent["music_flamingo_full"] == "too short (< 1.0 s)"


def test_prompt_placeholders_need_features_and_are_rendered(model):
    prompts = {"full": {"template": "Estimated tempo {bpm}, key {key}. Describe the track.", "max_tokens": 4}}
    with pytest.raises(ConfigError, match="placeholders"):
        F.caption_track(model, sine(3.0), P({"prompts": prompts}))
    result = F.caption_track(model, sine(3.0), P({**SAMPLE, "prompts": prompts}),
                             features={"bpm": 127.98, "bpm_is_defined": 1})
    assert result.meta["captions"]["music_flamingo_full"]["prompt"] == (
        "Estimated tempo 128 BPM, key unknown. Describe the track.")
    with pytest.raises(ConfigError, match="not usable in a key"):
        F.caption_track(model, sine(3.0), P({"prompts": {"Full Text": prompts["full"]}}), features={})


def test_missing_or_wrong_projector_is_a_clear_error(tiny_files, tmp_path):
    with pytest.raises(CaptionModelError, match="projector .* is missing"):
        F.load_flamingo(str(tiny_files[0]), str(tmp_path / "none.gguf"), P(LOAD))
    with pytest.raises(CaptionModelError, match="missing"):
        F.load_flamingo(str(tmp_path / "none.gguf"), str(tiny_files[1]), P(LOAD))


# ------------------------------------------------------------------ pure helpers

def test_central_excerpt_positions():
    x = np.arange(100, dtype=np.float32)
    part, start, end = F.central_excerpt(x, 10, 4.0)
    assert (part[0], len(part), start, end) == (30.0, 40, 3.0, 7.0)
    whole, start, end = F.central_excerpt(x, 10, 20.0)
    assert len(whole) == 100 and (start, end) == (0.0, 10.0)


def test_trim_to_last_sentence():
    assert F.trim_to_last_sentence("A dark track. It builds! Then the bass dro") == "A dark track. It builds!"
    assert F.trim_to_last_sentence("No sentence end at 3.5 kHz here") is None


def test_default_prompts_and_variants():
    defaults = F.FlamingoParams()
    assert set(defaults.prompts) == {"full", "technical", "genre_mood", "instrumentation", "structure"}
    assert defaults.model_variant in F.MODEL_VARIANTS == {
        "IQ3_M": "music_flamingo_iq3_m", "Q6_K": "music_flamingo_q6_k", "Q8_0": "music_flamingo_q8_0"}
    for spec in defaults.prompts.values():
        assert spec.max_tokens > 0 and spec.template and "{" not in spec.template


def test_prompts_are_named_entries_with_a_template():
    # configured prompts are merged over the default ones by name (null drops one); a new one's max_tokens defaults
    own = from_config(F.FlamingoParams, {"prompts": {"mood": {"template": "Mood?"}, "technical": None}},
                      where="captions_flamingo")
    assert list(own.prompts) == ["full", "genre_mood", "instrumentation", "structure", "mood"]
    assert own.prompts["mood"] == F.PromptParams(template="Mood?", max_tokens=400)
    with pytest.raises(ConfigError, match=r"captions_flamingo\.prompts\.mood\.max_tokens"):
        P({"prompts": {"mood": {"template": "Mood?", "max_tokens": 0}}})
    with pytest.raises(ConfigError, match="captions_flamingo.model_variant"):
        P({"model_variant": "Q4_0"})


def test_manifest_entries_name_every_variant_and_the_projector():
    from conftest import REPO

    models = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text(encoding="utf-8"))["models"]
    for name in [*F.MODEL_VARIANTS.values(), F.MMPROJ_MODEL]:
        entry = models[name]
        assert entry["families"] == ["captions_flamingo"]
        (file,) = entry["files"]
        assert file["path"].startswith("music_flamingo/") and file["urls"][0].startswith("https://huggingface.co/")
