"""Music Flamingo captions through llama.cpp's multimodal (mtmd) API, in process (family ``captions_flamingo``).

NVIDIA Music Flamingo (Qwen2.5-7B text model + Audio Flamingo 3 / Whisper-large
audio encoder) ships as GGUF: a text model in one of several quantisations
(IQ3_M, Q6_K, Q8_0; default Q6_K) plus the audio projector ``mmproj`` file.
llama-cpp-python (0.3.36+) exposes llama.cpp's mtmd C API, including audio
input; this module uses it directly (no ``llama-mtmd-cli`` subprocess):

1. the text model and the projector are loaded once per job
   (:func:`load_flamingo`);
2. the track is downmixed to mono and resampled to the projector's audio rate
   (16 kHz for Music Flamingo, read from the file); a track longer than
   ``max_audio_s`` is cut to its central ``max_audio_s`` seconds (``_meta``
   says which part);
3. llama.cpp's Whisper preprocessor turns it into log-mel windows of 30 s
   (3000 frames at 100 frames/s; the audio is padded with silence, giving
   floor(duration / 30 s) + 1 windows, e.g. 65 s -> 3, 30.0 s -> 2), each
   encoded into 750 embeddings. ``context_size`` must hold 750 per window plus
   the chat prefix, the prompt and ``max_tokens``: the defaults (570 s -> 20
   windows = 15000 positions, context 16384) leave about 1380 tokens for text;
4. the chat prefix (template up to the user turn) and the audio embeddings are
   evaluated ONCE into the context; for every prompt the context is cut back
   to that prefix and only the prompt's own tokens are evaluated before
   sampling (:meth:`mirflow.captions.llm.ChatModel.continue_after`). Audio is
   therefore encoded and decoded once per track, not once per prompt;
5. each answer is cleaned (:func:`mirflow.captions.text.clean_caption`); an
   answer cut off at ``max_tokens`` is trimmed to its last complete sentence.

Keys: ``music_flamingo_<name>`` for each prompt of ``prompts``. Prompt
templates may contain feature placeholders (``{genres}``, ``{bpm}``,
``{key}``, ... see :func:`mirflow.captions.facts.render_prompt`); a template
with placeholders needs the track's features, a missing feature renders as
"unknown". Silent audio or audio shorter than ``min_audio_s`` leaves every key
absent (the model would describe silence as music).

Reproducibility: a fixed ``seed`` gives identical text on reruns with the same
files, build and hardware (every prompt sees exactly the same context).
"""
from __future__ import annotations

import ctypes
import dataclasses
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import AudioSignal
from ..errors import ConfigError
from ..params import mapping, param, section
from ..result import FeatureResult
from .facts import FactParams, placeholders_in, render_prompt
from .llm import CaptionModelError, ChatModel, Sampling, route_native_logs
from .text import clean_caption

log = logging.getLogger("mirflow.captions")

KEY_PREFIX = "music_flamingo_"

#: Quantisation -> name of the model entry in models/manifest.yaml (the projector is shared).
MODEL_VARIANTS = {"IQ3_M": "music_flamingo_iq3_m", "Q6_K": "music_flamingo_q6_k", "Q8_0": "music_flamingo_q8_0"}
MMPROJ_MODEL = "music_flamingo_mmproj"

#: The prompts asked by default: name -> template and token limit (each gives music_flamingo_<name>).
DEFAULT_PROMPTS = {
    "full": {
        "template": ("Describe this track in full detail: its genre and subgenre, tempo and key, the "
                     "instruments and how they are played, the production style, and the overall mood."),
        "max_tokens": 500,
    },
    "technical": {
        "template": ("Give a technical analysis of this track: tempo, key and mode, the main chord "
                     "progression, dynamics, and how the performance develops over time."),
        "max_tokens": 400,
    },
    "genre_mood": {
        "template": "What are the genre and the mood of this track? Answer in one or two sentences.",
        "max_tokens": 120,
    },
    "instrumentation": {
        "template": "Which instruments and sounds do you hear in this track, and what role does each play?",
        "max_tokens": 300,
    },
    "structure": {
        "template": ("Describe the structure of this track section by section (for example intro, verse, "
                     "chorus, breakdown, outro) and how the arrangement changes."),
        "max_tokens": 400,
    },
}


@dataclass(frozen=True)
class PromptParams:
    """One Music Flamingo prompt."""

    template: str = param("", doc="Prompt text, with optional feature placeholders "
                          "(mirflow.captions.facts.render_prompt); required")
    max_tokens: int = param(400, unit="tokens", minimum=1, doc="Most tokens of the answer")


@dataclass(frozen=True)
class FlamingoParams:
    """Parameters of ``captions_flamingo`` (config section ``captions_flamingo``)."""

    model_variant: str = param("Q6_K", choices=tuple(MODEL_VARIANTS),
                               doc="Text model quantisation the workflow passes (models/manifest.yaml)")
    prompts: Mapping[str, PromptParams] = mapping(
        PromptParams, DEFAULT_PROMPTS, doc="Prompts by name, each giving music_flamingo_<name>; configured "
        "prompts are merged over these by name (null drops one)", min_entries=1)
    system_prompt: str | None = param(None, kind=str, nullable=True,
                                      doc="System prompt (null: the model's chat template decides)")
    # sampling (llama.cpp semantics, the values llama-mtmd-cli used in the old system)
    seed: int = param(42, minimum=0, maximum=2**32 - 2, doc="Sampler seed")
    temperature: float = param(0.7, minimum=0.0, doc="Sampling temperature (0: greedy)")
    top_p: float = param(0.9, minimum=0.0, maximum=1.0, doc="Nucleus sampling threshold (1: off)")
    top_k: int = param(40, minimum=0, doc="Top-k filter (0: off)")
    min_p: float = param(0.05, minimum=0.0, maximum=1.0, doc="Min-p filter (0: off)")
    repeat_penalty: float = param(1.0, above=0.0, doc="Repetition penalty (1: off)")
    # model loading
    context_size: int = param(16384, unit="tokens", minimum=1,
                              doc="llama.cpp context: 750 positions per 30 s of audio, plus the prompt and answer")
    gpu_layers: int = param(-1, minimum=-1, doc="Text model layers offloaded to the GPU (-1: all, 0: CPU only)")
    batch_size: int = param(512, unit="tokens", minimum=1, doc="llama.cpp batch size")
    flash_attention: bool = param(True, doc="Flash attention in the text model and the audio projector")
    mmproj_gpu: bool = param(True, doc="Run the audio projector on the GPU")
    # the central part of a longer track is analysed (see the module docstring for the context it needs)
    max_audio_s: float = param(570.0, unit="s", above=0.0, doc="Longer tracks are cut to their central part")
    min_audio_s: float = param(1.0, unit="s", minimum=0.0, doc="Shorter audio leaves every key absent")
    facts: FactParams = section(FactParams(), doc="Thresholds of the {genres}/{moods}/... placeholders")


@dataclass
class FlamingoModel:
    """A loaded Music Flamingo: the text model, the mtmd context of its audio projector, and facts about both."""

    chat: ChatModel
    mtmd_ctx: Any
    mmproj_path: Path
    audio_sample_rate: int
    _mtmd: Any = dataclasses.field(repr=False, default=None)

    def describe(self) -> dict[str, Any]:
        return {**self.chat.describe(), "mmproj_file": self.mmproj_path.name,
                "mmproj_size_bytes": self.mmproj_path.stat().st_size, "audio_sample_rate": self.audio_sample_rate}

    def close(self) -> None:
        if self.mtmd_ctx is not None:
            self._mtmd.mtmd_free(self.mtmd_ctx)
            self.mtmd_ctx = None
        self.chat.close()


def load_flamingo(model_path: str, mmproj_path: str, params: FlamingoParams = FlamingoParams(),
                  threads: int | None = None) -> FlamingoModel:
    """Load the text model and its audio projector once.

    Raises
    ------
    CaptionModelError
        If a file is missing or not loadable, or the projector has no audio encoder.
    """
    p = params
    import llama_cpp

    try:
        import llama_cpp.mtmd_cpp as mtmd
    except (ImportError, OSError) as err:
        raise CaptionModelError(f"this llama-cpp-python build has no multimodal (mtmd) library: {err}.",
                                "install llama-cpp-python >= 0.3.36 built with libmtmd.") from err
    route_native_logs()
    mmproj = Path(mmproj_path)
    if not mmproj.is_file():
        raise CaptionModelError(f"Music Flamingo audio projector {mmproj} is missing.",
                                "run `snakemake fetch_models` (or `make models`) or place the file there.")
    if not mtmd.mtmd_get_cap_from_file(str(mmproj).encode()).inp_audio:
        raise CaptionModelError(f"{mmproj} has no audio encoder (is it a vision projector?).",
                                "use the Music Flamingo mmproj file.")
    chat = ChatModel(model_path, context_size=p.context_size, threads=threads, gpu_layers=p.gpu_layers,
                     batch_size=p.batch_size, flash_attention=p.flash_attention)
    ctx_params = mtmd.mtmd_context_params_default()
    ctx_params.use_gpu = p.mmproj_gpu
    ctx_params.print_timings = False
    ctx_params.n_threads = chat.threads
    ctx_params.warmup = False
    ctx_params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if p.flash_attention
                                  else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), chat.llm.model, ctx_params)
    if ctx is None:
        chat.close()
        raise CaptionModelError(f"llama.cpp cannot load the audio projector {mmproj} for {Path(model_path).name}.",
                                "use the mmproj file published with the same Music Flamingo conversion "
                                "(its projection size must match the text model's embedding size).")
    if not mtmd.mtmd_support_audio(ctx):
        mtmd.mtmd_free(ctx)
        chat.close()
        raise CaptionModelError(f"{mmproj} does not support audio input.", "use the Music Flamingo mmproj file.")
    return FlamingoModel(chat=chat, mtmd_ctx=ctx, mmproj_path=mmproj,
                         audio_sample_rate=int(mtmd.mtmd_get_audio_sample_rate(ctx)), _mtmd=mtmd)


def central_excerpt(mono: np.ndarray, sample_rate: int, max_s: float) -> tuple[np.ndarray, float, float]:
    """The central ``max_s`` seconds of ``mono`` (all of it when shorter).

    Returns
    -------
    samples : np.ndarray
        The excerpt.
    start_s, end_s : float
        Its position in the input, s.
    """
    n = len(mono)
    keep = int(round(max_s * sample_rate))
    if n <= keep:
        return mono, 0.0, n / sample_rate
    start = (n - keep) // 2
    return mono[start:start + keep], start / sample_rate, (start + keep) / sample_rate


def model_input_audio(signal: AudioSignal, target_rate: int, max_s: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Mono float32 at ``target_rate`` (soxr_hq), cut to the central ``max_s`` seconds, and how it was made."""
    excerpt, start_s, end_s = central_excerpt(signal.mono(), signal.sample_rate, max_s)
    facts: dict[str, Any] = {"analysed_s": [round(start_s, 3), round(end_s, 3)],
                             "track_duration_s": round(signal.duration_s, 3)}
    if signal.sample_rate != target_rate:
        import librosa

        excerpt = librosa.resample(excerpt, orig_sr=signal.sample_rate, target_sr=target_rate, res_type="soxr_hq")
        facts["resampled"] = f"{signal.sample_rate} Hz -> {target_rate} Hz (soxr_hq), mono downmix"
    else:
        facts["resampled"] = f"none ({target_rate} Hz), mono downmix"
    return np.ascontiguousarray(excerpt, dtype=np.float32), facts


@dataclass(frozen=True)
class AudioPrefix:
    """The chat prefix and the track's audio, evaluated into the context.

    Attributes
    ----------
    n_pos : int
        Context positions the prefix occupies.
    audio_windows : int
        Audio chunks (30 s Whisper windows) the projector produced.
    audio_tokens : int
        Embeddings of all windows together.
    seconds : float
        Time to encode the audio and evaluate the prefix, s.
    """

    n_pos: int
    audio_windows: int
    audio_tokens: int
    seconds: float


def split_chat(model: FlamingoModel, prompts: Mapping[str, str], system_prompt: str | None
               ) -> tuple[str, dict[str, str]]:
    """The chat text shared by every prompt (up to and including the audio marker) and each prompt's rest.

    The user turn is the media marker followed by the prompt (audio first, as
    llama-mtmd-cli does).

    Raises
    ------
    CaptionModelError
        If the model's chat template puts prompt-dependent text before the audio.
    """
    marker = model._mtmd.mtmd_default_marker().decode()
    prefix: str | None = None
    suffixes: dict[str, str] = {}
    for name, prompt in prompts.items():
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        messages.append({"role": "user", "content": marker + prompt})
        text = model.chat.render(messages)
        at = text.find(marker)
        if at < 0 or text.count(marker) != 1:
            raise CaptionModelError(f"the chat template of {model.chat.path.name} dropped or repeated the audio "
                                    "marker.", "use the Music Flamingo GGUF conversion's own chat template.")
        head, tail = text[:at + len(marker)], text[at + len(marker):]
        if prefix is not None and head != prefix:
            raise CaptionModelError(f"the chat template of {model.chat.path.name} renders prompt-dependent text "
                                    "before the audio, so the audio cannot be shared between prompts.",
                                    "use one prompt per job or a template that starts the user turn with the audio.")
        prefix = head
        suffixes[name] = tail
    # no prompt (every default dropped by null) failed before too, on None.encode in encode_audio_prefix
    assert prefix is not None, "split_chat needs at least one prompt"
    return prefix, suffixes


def encode_audio_prefix(model: FlamingoModel, prefix_text: str, audio: np.ndarray) -> AudioPrefix:
    """Evaluate the chat prefix and ``audio`` (mono float32 at the projector's rate) into an empty context.

    Raises
    ------
    CaptionModelError
        If tokenising or evaluating fails, or the prefix alone fills the context.
    """
    import llama_cpp

    mtmd = model._mtmd
    start = time.perf_counter()
    bitmap = mtmd.mtmd_bitmap_init_from_audio(len(audio), audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    if bitmap is None:
        raise CaptionModelError("llama.cpp could not take the audio samples.")
    chunks = mtmd.mtmd_input_chunks_init()
    try:
        text = mtmd.mtmd_input_text()
        encoded = prefix_text.encode("utf-8")
        text.text, text.text_len, text.add_special, text.parse_special = encoded, len(encoded), True, True
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        status = mtmd.mtmd_tokenize(model.mtmd_ctx, chunks, ctypes.byref(text), bitmaps, 1)
        if status != 0:
            raise CaptionModelError(f"llama.cpp could not tokenise the prompt with the audio (status {status}).")
        windows = tokens = 0
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_AUDIO:
                windows += 1
                tokens += mtmd.mtmd_input_chunk_get_n_tokens(chunk)
        n_pos = mtmd.mtmd_helper_get_n_pos(chunks)
        if n_pos >= model.chat.context_size:
            raise CaptionModelError(
                f"the audio needs {n_pos} context positions ({windows} windows of 30 s), more than context_size "
                f"{model.chat.context_size}.", "raise context_size or lower max_audio_s.")
        # start from an empty context: a previous track's prefix and answers must not stay in the KV cache
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(model.chat.llm.ctx), True)
        model.chat.llm.reset()
        new_n_past = llama_cpp.llama_pos(0)
        status = mtmd.mtmd_helper_eval_chunks(model.mtmd_ctx, model.chat.llm.ctx, chunks, 0, 0,
                                              model.chat.llm.n_batch, False, ctypes.byref(new_n_past))
        if status != 0:
            raise CaptionModelError(f"llama.cpp failed to evaluate the audio (status {status}).",
                                    "see the log; lower context_size or batch_size if memory ran out.")
    finally:
        mtmd.mtmd_input_chunks_free(chunks)
        mtmd.mtmd_bitmap_free(bitmap)
    return AudioPrefix(n_pos=int(new_n_past.value), audio_windows=windows, audio_tokens=int(tokens),
                       seconds=time.perf_counter() - start)


def trim_to_last_sentence(text: str) -> str | None:
    """``text`` up to its last sentence end (. ! ?), or None when no sentence ended."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[:ends[-1]].strip() if ends else None


def _prompt_texts(prompts: Mapping[str, PromptParams], features: Mapping[str, Any] | None,
                  fact_params: FactParams) -> dict[str, str]:
    out = {}
    for name, spec in prompts.items():
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ConfigError(f"Music Flamingo prompt name {name!r} is not usable in a key.",
                              "use lower-case letters, digits and underscores.")
        template = spec.template
        if not template.strip():
            raise ConfigError(f"Music Flamingo prompt {name!r} has no template.",
                              f"give captions_flamingo.prompts.{name}.template the prompt text.")
        if placeholders_in(template) and features is None:
            raise ConfigError(f"Music Flamingo prompt {name!r} uses feature placeholders but the job got no "
                              "features.", "give the captions_flamingo job the merged features, or remove the "
                                       "placeholders.")
        out[name] = render_prompt(template, features or {}, fact_params)
    return out


def caption_track(model: FlamingoModel, signal: AudioSignal, params: FlamingoParams = FlamingoParams(),
                  features: Mapping[str, Any] | None = None) -> FeatureResult:
    """Music Flamingo's answers to every prompt for one track.

    Parameters
    ----------
    model : FlamingoModel
        From :func:`load_flamingo`.
    signal : AudioSignal
        The track (any rate and channel count).
    params : FlamingoParams, optional
        Prompts, sampling, audio limits and placeholder thresholds.
    features : mapping, optional
        The track's merged features, needed when a prompt has placeholders.

    Returns
    -------
    FeatureResult
        ``music_flamingo_<name>`` per prompt; ``meta`` has the audio excerpt,
        windows, timings, the rendered prompts and per key the stop reason.
    """
    p = params
    prompts = _prompt_texts(p.prompts, features, p.facts)
    keys = [KEY_PREFIX + name for name in prompts]
    result = FeatureResult()
    result.meta["model"] = model.describe()
    if signal.is_digital_silence():
        result.mark_all_absent(keys, "silent")
        return result
    if signal.duration_s < p.min_audio_s:
        result.mark_all_absent(keys, f"too short (< {p.min_audio_s} s)")
        return result
    audio, audio_facts = model_input_audio(signal, model.audio_sample_rate, p.max_audio_s)
    prefix_text, suffixes = split_chat(model, prompts, p.system_prompt)
    prefix = encode_audio_prefix(model, prefix_text, audio)
    result.meta["audio"] = {**audio_facts, "windows": prefix.audio_windows, "audio_tokens": prefix.audio_tokens,
                            "prefix_positions": prefix.n_pos, "encode_seconds": round(prefix.seconds, 3)}
    per_key: dict[str, Any] = {}
    result.meta["captions"] = per_key
    for name, suffix in suffixes.items():
        key = KEY_PREFIX + name
        sampling = Sampling.from_params(p, max_tokens=p.prompts[name].max_tokens)
        generation = model.chat.continue_after(prefix.n_pos, suffix, sampling)
        text = clean_caption(generation.text)
        record = {"prompt": prompts[name], "max_tokens": sampling.max_tokens, "stop": generation.stop,
                  "generated_tokens": generation.generated_tokens, "seconds": round(generation.seconds, 3)}
        if generation.stop == "max_tokens" and text:
            trimmed = trim_to_last_sentence(text)
            record["trimmed"] = ("to the last complete sentence" if trimmed
                                 else "no sentence ended before max_tokens; kept as generated")
            text = trimmed or text
        per_key[key] = record
        if text:
            result.set(key, text)
        else:
            result.mark_absent(key, "the model returned no text")
    result.meta["sampling"] = {"seed": p.seed, "temperature": p.temperature, "top_p": p.top_p, "top_k": p.top_k,
                               "min_p": p.min_p, "repeat_penalty": p.repeat_penalty}
    return result
