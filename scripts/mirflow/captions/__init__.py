"""Text captions of a track.

Two families write captions:

* ``captions_feature`` (:mod:`mirflow.captions.feature_captions`): a small
  instruction-tuned GGUF chat model (SmolLM2-135M-Instruct) rephrases a factual
  skeleton built deterministically from the track's computed features; every
  output is verified against those facts and falls back to the deterministic
  template caption when the model invents anything. Works offline on a CPU.
* ``captions_flamingo`` (:mod:`mirflow.captions.flamingo`): NVIDIA Music
  Flamingo (GGUF text model + audio projector) listens to the track through
  llama.cpp's multimodal (mtmd) API, in process, and answers a set of prompts.

Shared pieces: :mod:`mirflow.captions.text` (normalisation of every caption for
the T5 tokenizer), :mod:`mirflow.captions.facts` (features -> facts, prompt
placeholders, verification), :mod:`mirflow.captions.llm` (deterministic text
generation with llama-cpp-python).
"""
