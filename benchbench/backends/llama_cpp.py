"""llama.cpp, in process, through llama-cpp-python.

The ``Llama`` class loads the model and creates the context with our RoPE
settings; scoring and greedy decoding then go through llama.cpp's C API
(``llama_decode`` on a batch we fill), so that every logit row is read exactly
once and no sampler or prompt cache of the wrapper sits in between.
"""

import ctypes
import logging
import math
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from benchbench.backends.base import Backend, TokenScores, check_rope, shared_prefix
from benchbench.config import BackendConfig, ScalingConfig
from benchbench.errors import BackendError, ConfigError
from benchbench.gguf_tensors import read_f32_tensor
from benchbench.scaling import RopeInfo, reference, resolve
from benchbench.scaling.llama_cpp import applied_rope, expected_rope, llama_cpp_params

log = logging.getLogger(__name__)

# KV cache element types by their llama.cpp names (--cache-type-k/-v)
KV_TYPES = {
    "f32": llama_cpp.GGML_TYPE_F32,
    "f16": llama_cpp.GGML_TYPE_F16,
    "q8_0": llama_cpp.GGML_TYPE_Q8_0,
    "q4_0": llama_cpp.GGML_TYPE_Q4_0,
}

# llama.cpp's log lines, kept so that load errors and the effective context
# parameters can be read back; llama.cpp writes nothing to the terminal itself
_log_lines: list[str] = []


@llama_cpp.llama_log_callback
def _capture_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    _log_lines.append(text.decode("utf-8", errors="replace"))


llama_cpp.llama_log_set(_capture_log, ctypes.c_void_p(0))


def open_vocab(model_path: Path) -> llama_cpp.Llama:
    """The GGUF's tokenizer and metadata in llama.cpp, without its weights; close it after use."""
    _log_lines.clear()
    try:
        return llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    except ValueError:
        raise BackendError(
            f"model.path: llama.cpp could not read '{model_path}': {_first_error()}"
        ) from None


def read_rope_info(model_path: Path) -> tuple[RopeInfo, dict]:
    """RoPE facts and the raw metadata of a GGUF file, without loading weights.

    The metadata also gets ``tokenizer.n_vocab``, the vocabulary size.
    """
    vocab = open_vocab(model_path)
    metadata = dict(vocab.metadata)
    metadata["tokenizer.n_vocab"] = vocab.n_vocab()
    vocab.close()

    arch = metadata.get("general.architecture", "llama")
    theta = float(metadata.get(f"{arch}.rope.freq_base", 10000.0))
    dims = metadata.get(f"{arch}.rope.dimension_count")
    if dims is None:
        heads = int(metadata[f"{arch}.attention.head_count"])
        dims = int(metadata[f"{arch}.embedding_length"]) // heads
    scale_factor = float(metadata.get(f"{arch}.rope.scaling.factor", 1.0) or 1.0)
    betas = {
        f"yarn_{key}": float(metadata[name])
        for key in ("beta_fast", "beta_slow")
        if (name := f"{arch}.rope.scaling.yarn_{key}") in metadata
    }
    try:
        freqs = read_f32_tensor(model_path, "rope_freqs.weight")
    except (ValueError, struct.error) as err:
        raise BackendError(f"model.path: cannot read '{model_path}': {err}") from None
    info = RopeInfo(
        rope_theta=theta,
        rope_dimensions=int(dims),
        trained_context_length=int(metadata[f"{arch}.context_length"]),
        freq_scale_train=1.0 / scale_factor,
        **betas,
        file_scaling_type=str(metadata.get(f"{arch}.rope.scaling.type", "none")),
        rope_freqs=None if freqs is None else tuple(float(f) for f in freqs),
    )
    return info, metadata


# logit rows turned into log-probabilities at a time
_SOFTMAX_ROWS = 128

# bytes per cached element; q8_0 and q4_0 store 32 values with one f16 scale
_KV_BYTES = {"f32": 4.0, "f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


def memory_estimate(
    metadata: dict, n_ctx: int, cfg: BackendConfig, weights_bytes: int
) -> dict[str, int]:
    """Bytes of host memory a context of ``n_ctx`` tokens needs, by part.

    KV cache: keys and values of every layer and position. Logits: llama.cpp's
    output buffer for a batch plus the scratch block scoring uses. Attention
    scores: without flash attention, one ubatch x n_ctx matrix per head.
    """
    arch = metadata.get("general.architecture", "llama")
    layers = int(metadata[f"{arch}.block_count"])
    heads = int(metadata[f"{arch}.attention.head_count"])
    heads_kv = int(metadata.get(f"{arch}.attention.head_count_kv", heads))
    width = int(metadata[f"{arch}.embedding_length"])
    head_dim = int(metadata.get(f"{arch}.attention.key_length", width // heads))
    n_vocab = int(metadata["tokenizer.n_vocab"])
    n_batch = min(cfg.n_batch, n_ctx)
    n_ubatch = min(cfg.n_ubatch, n_batch)

    per_position = (
        layers * heads_kv * head_dim * (_KV_BYTES[cfg.type_k] + _KV_BYTES[cfg.type_v])
    )
    parts = {
        "weights": weights_bytes,
        "kv_cache": int(n_ctx * per_position),
        "logits": (n_batch + _SOFTMAX_ROWS) * n_vocab * 4,
        "attention_scores": 0 if cfg.flash_attn else n_ubatch * n_ctx * heads * 4,
    }
    parts["total"] = sum(parts.values())
    return parts


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (Linux), else None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _load_hint() -> str:
    if any("alloc" in line for line in _log_lines):
        return "lower backend.n_ctx (or the longest of sweep.context_lengths) or backend.n_batch"
    return "check model.path"


def _first_error(since: int = 0) -> str:
    """The first error llama.cpp logged after line ``since``; later ones echo it."""
    lines = [line.strip() for line in _log_lines[since:] if line.strip()]
    errors = [
        line for line in lines if "error" in line.lower() or "failed" in line.lower()
    ]
    return (errors or lines or ["no message from llama.cpp"])[0]


def _logged_value(name: str) -> float | None:
    """The last ``name = value`` that llama.cpp logged while creating a context."""
    pattern = re.compile(rf"\b{name}\s+=\s+([-+0-9.eE]+)")
    for line in reversed(_log_lines):
        match = pattern.search(line)
        if match:
            return float(match.group(1))
    return None


class LlamaVocab:
    """Tokenizing as llama.cpp does, for any object holding a ``llama_cpp.Llama`` as ``_llm``.

    Shared by the backend and by tokenizer-only uses of a GGUF file (lm-eval's
    passkey documents), so that both split text the same way.
    """

    _llm: llama_cpp.Llama

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    @property
    def bos_token_id(self) -> int | None:
        bos = self._llm.token_bos()
        return bos if bos >= 0 else None

    @property
    def adds_bos(self) -> bool:
        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        return bool(llama_cpp.llama_vocab_get_add_bos(vocab))

    def chat_template(self) -> str | None:
        return self._llm.metadata.get("tokenizer.chat_template")


class LlamaCppBackend(LlamaVocab, Backend):
    """A GGUF model in a llama.cpp context of ``n_ctx`` tokens."""

    name = "llama_cpp"

    def __init__(
        self,
        model_path: Path,
        rope: RopeInfo,
        cfg: BackendConfig,
        scaling: ScalingConfig,
        n_ctx: int,
    ):
        if cfg.n_gpu_layers != 0 and not llama_cpp.llama_supports_gpu_offload():
            raise ConfigError(
                "backend.n_gpu_layers",
                "this llama-cpp-python was built without GPU offload; rebuild it with "
                'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CUDA=on" bash scripts/setup.sh, or set backend.n_gpu_layers=0',
            )
        self.n_ctx = n_ctx
        self._rope_params = llama_cpp_params(scaling, rope)
        self._rope = rope
        self._scaling = resolve(scaling, rope)
        threads = cfg.n_threads or len(os.sched_getaffinity(0))
        n_batch = min(cfg.n_batch, n_ctx)

        _log_lines.clear()
        try:
            self._llm = llama_cpp.Llama(
                str(model_path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=min(cfg.n_ubatch, n_batch),
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=cfg.n_gpu_layers,
                flash_attn=cfg.flash_attn,
                type_k=KV_TYPES[cfg.type_k],
                type_v=KV_TYPES[cfg.type_v],
                verbose=False,
                **self._rope_params,
            )
        except ValueError:
            raise BackendError(
                f"llama.cpp could not load '{model_path}': {_first_error()}; {_load_hint()}"
            ) from None

        self._ctx = self._llm.ctx
        self._prefix_cache = cfg.prefix_cache
        # tokens whose keys and values sit in the cache, at positions 0, 1, ...
        self._cached: list[int] = []
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._n_vocab = self._llm.n_vocab()
        self._n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._effective = {
            "n_ctx": llama_cpp.llama_n_ctx(self._ctx),
            "freq_base": _logged_value("freq_base"),
            "freq_scale": _logged_value("freq_scale"),
        }
        self._settings = {
            "n_batch": n_batch,
            "n_ubatch": min(cfg.n_ubatch, n_batch),
            "n_threads": threads,
        }
        self._settings.update(n_gpu_layers=cfg.n_gpu_layers, flash_attn=cfg.flash_attn)
        self._settings.update(
            type_k=cfg.type_k, type_v=cfg.type_v, prefix_cache=cfg.prefix_cache
        )
        self._check_rope(expected_rope(scaling, rope))

    def _check_rope(self, expected: dict) -> None:
        # the context reports the base and scale it settled on; a difference
        # means the scaling was not applied as configured
        self._check_logged(expected)
        want = reference.effective(self._scaling, self._rope)
        check_rope("llama.cpp", self.effective_rope(), want, self._scaling.method)

    def effective_rope(self, seq_len: int | None = None) -> dict:
        # every method llama.cpp runs is length-independent, so seq_len changes nothing
        applied = applied_rope(
            self._scaling,
            self._rope,
            self._effective["freq_base"],
            self._effective["freq_scale"],
        )
        return {**self._effective, **applied}

    def _check_logged(self, expected: dict) -> None:
        for key, want in expected.items():
            got = self._effective[key]
            if got is None:
                raise BackendError(
                    f"llama.cpp did not report its {key}; cannot confirm the RoPE scaling"
                )
            if not math.isclose(
                got, want, rel_tol=1e-5, abs_tol=0.05 if key == "freq_base" else 1e-6
            ):
                raise BackendError(
                    f"llama.cpp applied {key}={got} but the scaling config asks for {want}"
                )

    # tokens: tokenize, detokenize, bos_token_id, adds_bos and chat_template
    # come from LlamaVocab

    @property
    def eos_token_id(self) -> int | None:
        eos = self._llm.token_eos()
        return eos if eos >= 0 else None

    # forward passes

    def _decode(
        self, tokens: Sequence[int], start: int, all_logits: bool
    ) -> np.ndarray:
        """Feed ``tokens`` at positions ``start...`` and yield their logit rows.

        Yields ``(offset, rows)`` per batch, rows of shape (tokens, n_vocab); with
        ``all_logits`` false, only the last token's row, once at the end. The
        rows live in llama.cpp's buffer and are overwritten by the next decode,
        so callers reduce them at once.
        """
        batch = self._batch
        for begin in range(0, len(tokens), self._n_batch):
            chunk = tokens[begin : begin + self._n_batch]
            last_chunk = begin + self._n_batch >= len(tokens)
            for j, token in enumerate(chunk):
                batch.token[j] = token
                batch.pos[j] = start + begin + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = 0
                batch.logits[j] = all_logits or (last_chunk and j == len(chunk) - 1)
            batch.n_tokens = len(chunk)
            mark = len(_log_lines)
            if llama_cpp.llama_decode(self._ctx, batch) != 0:
                raise BackendError(
                    f"llama_decode failed at position {start + begin}: {_first_error(mark)}"
                )
            if all_logits:
                rows = np.ctypeslib.as_array(
                    llama_cpp.llama_get_logits(self._ctx),
                    shape=(len(chunk), self._n_vocab),
                )
                yield begin, rows
        if not all_logits:
            row = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(self._ctx, -1), shape=(self._n_vocab,)
            )
            yield len(tokens) - 1, row[None, :]

    def _reset(self) -> None:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)
        self._cached = []

    def _keep_prefix(self, tokens: list[int]) -> int:
        """Keep the cached keys and values of the prefix ``tokens`` shares with the cache.

        Returns how many tokens are kept. At least the last token is always fed
        again, since its logits are needed. Without ``prefix_cache`` nothing is kept.
        """
        if not self._prefix_cache:
            self._reset()
            return 0
        kept = shared_prefix(self._cached, tokens)
        memory = llama_cpp.llama_get_memory(self._ctx)
        if not llama_cpp.llama_memory_seq_rm(memory, 0, kept, -1):
            self._reset()
            return 0
        self._cached = self._cached[:kept]
        return kept

    def score(self, tokens: Sequence[int]) -> TokenScores:
        tokens = list(tokens)
        self.check_fits(len(tokens))
        self._reset()
        out = np.empty(len(tokens) - 1, dtype=np.float64)
        argmax = np.empty(len(tokens) - 1, dtype=np.int64)
        targets = np.asarray(tokens[1:], dtype=np.int64)
        # one reused scratch block keeps the log-softmax in cache and avoids
        # allocating n_batch x n_vocab temporaries per batch
        scratch = np.empty((_SOFTMAX_ROWS, self._n_vocab), dtype=np.float32)

        for begin, rows in self._decode(tokens, 0, all_logits=True):
            # row j predicts token begin + j + 1; the final token predicts nothing
            n = min(len(rows), len(targets) - begin)
            for lo in range(0, n, _SOFTMAX_ROWS):
                block = rows[lo : min(n, lo + _SOFTMAX_ROWS)]
                size = len(block)
                peak = block.max(axis=1, keepdims=True)
                shifted = np.subtract(block, peak, out=scratch[:size])
                np.exp(shifted, out=shifted)
                log_norm = peak[:, 0] + np.log(shifted.sum(axis=1, dtype=np.float64))
                at = begin + lo
                picked = block[np.arange(size), targets[at : at + size]].astype(
                    np.float64
                )
                out[at : at + size] = picked - log_norm
                argmax[at : at + size] = block.argmax(axis=1)
        return TokenScores(logprobs=out, argmax=argmax)

    def _prefill(self, tokens: list[int], max_new_tokens: int):
        # a prompt that starts like the previous one (same haystack, needle
        # further on) reuses the cache for the shared part
        kept = self._keep_prefix(tokens)
        *_, (_, rows) = self._decode(tokens[kept:], kept, all_logits=False)
        self._cached = list(tokens)
        return kept, rows[0]

    def _extend(self, token: int) -> np.ndarray:
        *_, (_, rows) = self._decode([token], len(self._cached), all_logits=False)
        self._cached.append(token)
        return rows[0]

    def _ends_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    # bookkeeping

    @property
    def version(self) -> str:
        return llama_cpp.__version__

    def provenance(self) -> dict:
        return {
            "name": self.name,
            "llama_cpp_python": llama_cpp.__version__,
            "system_info": llama_cpp.llama_print_system_info()
            .decode("utf-8", errors="replace")
            .strip(),
            "n_ctx_requested": self.n_ctx,
            **self._settings,
            "rope_params": self._rope_params,
            "rope_effective": self.effective_rope(),
        }

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self._llm.close()


def check_model_matches(
    rope: RopeInfo, trained_context_length: int | None, rope_theta: float | None
) -> None:
    """Refuse a model file that contradicts what its model config says."""
    if (
        trained_context_length is not None
        and trained_context_length != rope.trained_context_length
    ):
        raise ConfigError(
            "model.trained_context_length",
            f"is {trained_context_length} but the model file says {rope.trained_context_length}",
        )
    if rope_theta is not None and not math.isclose(
        rope_theta, rope.rope_theta, rel_tol=1e-6
    ):
        raise ConfigError(
            "model.rope_theta",
            f"is {rope_theta} but the model file says {rope.rope_theta}",
        )
