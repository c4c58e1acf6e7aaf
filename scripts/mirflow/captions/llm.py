"""Deterministic text generation with a GGUF chat model through llama-cpp-python.

:class:`ChatModel` loads a model once (per job) and answers chat prompts.
Reproducibility: every :meth:`ChatModel.chat` call starts from an empty
context (the whole prompt is evaluated again, no prefix cache from a previous
call) and samples with a fresh sampler seeded by the caller, so the same model
file, prompt, parameters and seed give the same text on every run on the same
machine and build. (llama-cpp-python's own ``create_chat_completion`` reuses
the previous prompt's KV cache; evaluating a prompt in one batch or in pieces
changes the logits in the last bits and, through sampling, the text.)

:meth:`ChatModel.continue_after` generates after a prefix that is already in
the context (the Music Flamingo audio prefix): the context is cut back to the
prefix, so each prompt sees exactly the prefix plus its own tokens.
"""
from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import MirflowError

if TYPE_CHECKING:  # llama_cpp is imported at run time only when a model is loaded
    from llama_cpp.llama_types import ChatCompletionRequestMessage

log = logging.getLogger("mirflow.captions")

#: Sampling parameters of one generation.
SAMPLING_KEYS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")


class CaptionModelError(MirflowError):
    """A caption model cannot be loaded or fails while generating."""


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn.

    Attributes
    ----------
    max_tokens : int
        Most tokens to generate.
    temperature : float
        0 = greedy (always the most likely token).
    top_p, top_k, min_p : float, int, float
        Nucleus, top-k and min-p filters (llama.cpp semantics; top_k 0 = off).
    repeat_penalty : float
        1.0 = off.
    seed : int
        Seed of the sampler's random generator (0 .. 2**32 - 2).
    """

    max_tokens: int
    temperature: float
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    seed: int = 0

    @classmethod
    def from_params(cls, params: Any, *, max_tokens: int) -> Sampling:
        """The sampling of a caption family's typed parameters (their ``temperature``, ``top_p``, ``top_k``,
        ``min_p``, ``repeat_penalty`` and ``seed`` attributes) with ``max_tokens`` tokens at most."""
        values = {k: getattr(params, k) for k in SAMPLING_KEYS if k != "max_tokens"}
        sampling = cls(max_tokens=max_tokens, **values)
        if sampling.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {sampling.max_tokens}")
        if sampling.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {sampling.temperature}")
        if not 0 <= sampling.seed < 2**32 - 1:
            raise ValueError(f"seed must be in 0 .. 2**32 - 2, got {sampling.seed}")
        return sampling


@dataclass(frozen=True)
class Generation:
    """One generated answer.

    Attributes
    ----------
    text : str
        Raw decoded text (not yet cleaned, see :func:`mirflow.captions.text.clean_caption`).
    prompt_tokens : int
        Tokens evaluated for this call (without a reused prefix).
    generated_tokens : int
        Tokens sampled.
    stop : str
        "end of turn" (the model ended its answer) or "max_tokens" (cut off).
    seconds : float
        Wall-clock time of the call, s.
    """

    text: str
    prompt_tokens: int
    generated_tokens: int
    stop: str
    seconds: float


def _log_to_python(level: int, text: bytes, user_data) -> None:
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        log.log(logging.ERROR if level == 3 else logging.DEBUG, "%s", message)


_LOG_CALLBACK = None


def route_native_logs() -> None:
    """Send llama.cpp and mtmd log lines to the ``mirflow.captions`` logger (errors at ERROR, the rest DEBUG)."""
    global _LOG_CALLBACK
    import llama_cpp

    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(_log_to_python)
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    try:
        import llama_cpp.mtmd_cpp as mtmd
    except (ImportError, OSError) as err:  # a build without libmtmd: text models still work
        log.debug("no libmtmd in this llama-cpp-python build: %s", err)
        return
    mtmd.mtmd_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


class ChatModel:
    """A GGUF chat model, loaded once.

    Parameters
    ----------
    model_path : str or path
        The ``.gguf`` file.
    context_size : int
        Context length in tokens (prompt + answer, and any audio prefix).
    threads : int, optional
        CPU threads; default ``os.cpu_count()``. Give at most the cores the job
        owns: llama.cpp's threads spin at barriers, and on an oversubscribed
        CPU two threads were measured 3-6x slower than one.
    gpu_layers : int
        Layers offloaded to the GPU (-1 = all; ignored by CPU-only builds).
    batch_size : int
        Tokens per decode call while evaluating a prompt.
    flash_attention : bool
        llama.cpp flash attention.

    Raises
    ------
    CaptionModelError
        If the file is missing or llama.cpp cannot load it.
    """

    def __init__(self, model_path: str | os.PathLike, *, context_size: int = 2048, threads: int | None = None,
                 gpu_layers: int = 0, batch_size: int = 512, flash_attention: bool = False):
        import llama_cpp

        path = Path(model_path)
        if not path.is_file():
            raise CaptionModelError(f"caption model file {path} is missing.",
                                    "run `snakemake fetch_models` (or `make models`) or place the file there.")
        route_native_logs()
        self.path = path
        self.threads = threads or os.cpu_count() or 1
        self.gpu_layers = gpu_layers
        try:
            self.llm = llama_cpp.Llama(str(path), n_ctx=context_size, n_batch=batch_size, n_ubatch=batch_size,
                                       n_threads=self.threads, n_threads_batch=self.threads,
                                       n_gpu_layers=gpu_layers, flash_attn=flash_attention, verbose=False)
        except (ValueError, RuntimeError) as err:
            raise CaptionModelError(f"llama.cpp cannot load {path}: {err}.",
                                    "check that the file is a complete GGUF model (its sha256 is verified by "
                                    "the model registry) and that llama-cpp-python is recent enough.") from err
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise CaptionModelError(f"{path} has no chat template (tokenizer.chat_template).",
                                    "use an instruction-tuned (chat) GGUF model.")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._formatter = Jinja2ChatFormatter(template=template, eos_token=self._token_text(self.llm.token_eos()),
                                              bos_token=self._token_text(self.llm.token_bos()))
        self.gpu_offload_supported = bool(llama_cpp.llama_supports_gpu_offload())

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    @property
    def context_size(self) -> int:
        return self.llm.n_ctx()

    def describe(self) -> dict[str, Any]:
        """Facts for ``_meta``: file name and size, context, threads, GPU layers, build capability."""
        return {"model_file": self.path.name, "model_size_bytes": self.path.stat().st_size,
                "context_size": self.context_size, "threads": self.threads, "gpu_layers": self.gpu_layers,
                "gpu_offload_supported_by_build": self.gpu_offload_supported}

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The model's chat template applied to ``messages``, ending with the assistant turn opener."""
        # llama_cpp types each role as its own TypedDict; the template reads only the "role" and "content" strings
        return self._formatter(messages=cast("list[ChatCompletionRequestMessage]", list(messages))).prompt

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        """Token ids of ``text``; special tokens in it (``<|im_start|>``, ...) are parsed as such."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def chat(self, messages: Sequence[Mapping[str, str]], sampling: Sampling) -> Generation:
        """Answer ``messages`` from an empty context (deterministic for a given seed)."""
        tokens = self.tokenize(self.render(messages), add_bos=True)
        self.llm.reset()
        return self._generate(tokens, sampling, prefix_tokens=0)

    def continue_after(self, prefix_tokens: int, text: str, sampling: Sampling) -> Generation:
        """Answer after a prefix of ``prefix_tokens`` positions already in the context.

        Everything after the prefix (an earlier answer) is dropped first, so
        each call sees exactly the prefix followed by ``text``.
        """
        tokens = self.tokenize(text, add_bos=False)
        if not tokens:
            raise ValueError("nothing to evaluate after the prefix")
        # Llama.eval() removes the KV cells at and after n_tokens before decoding: the context is cut back to
        # the prefix. The token ids it remembers for the prefix are unused (no prefix matching happens here).
        self.llm.n_tokens = prefix_tokens
        return self._generate(tokens, sampling, prefix_tokens=prefix_tokens)

    def _generate(self, tokens: list[int], sampling: Sampling, prefix_tokens: int) -> Generation:
        import llama_cpp

        if prefix_tokens + len(tokens) + sampling.max_tokens > self.context_size:
            raise CaptionModelError(
                f"prompt ({prefix_tokens} + {len(tokens)} tokens) plus max_tokens {sampling.max_tokens} exceeds "
                f"the context of {self.context_size} tokens.",
                "raise context_size (more memory) or lower max_tokens / the audio length.")
        start = time.perf_counter()
        self.llm.set_seed(sampling.seed)
        out: list[int] = []
        stop = "max_tokens"
        try:
            for token in self.llm.generate(tokens, reset=False, temp=sampling.temperature, top_p=sampling.top_p,
                                           top_k=sampling.top_k, min_p=sampling.min_p, typical_p=1.0,
                                           repeat_penalty=sampling.repeat_penalty):
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    stop = "end of turn"
                    break
                out.append(token)
                if len(out) >= sampling.max_tokens:
                    break
        except RuntimeError as err:
            raise CaptionModelError(f"llama.cpp failed while generating with {self.path.name}: {err}.",
                                    "see the log above; lower context_size or batch_size if memory ran out.") from err
        text = self.llm.detokenize(out, special=True).decode("utf-8", errors="replace")
        return Generation(text=text, prompt_tokens=len(tokens), generated_tokens=len(out), stop=stop,
                          seconds=time.perf_counter() - start)

    def close(self) -> None:
        """Free the model (also done when the object is garbage collected)."""
        self.llm.close()
