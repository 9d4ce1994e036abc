"""Hugging Face transformers, in process, on CPU or GPU.

Loads a GGUF file through transformers' GGUF support (the weights are
dequantized into ``backend.dtype``), or a local checkpoint folder, or a hub id
where the network allows. The RoPE scaling goes into the model config's
``rope_parameters`` before the model is built; once loaded, the rotary
embedding's inverse frequencies and attention scaling are read back and
compared with benchbench's own reference (``benchbench/scaling/reference.py``).

Prompts are fed ``backend.n_ubatch`` tokens at a time through a KV cache, so
that neither the attention scores nor the full-vocabulary logits of a long
sequence exist at once: peak memory grows with the chunk, not with the length.
"""

import inspect
import logging
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

from benchbench.backends.base import Backend, TokenScores, check_rope, shared_prefix
from benchbench.config import BackendConfig, ScalingConfig
from benchbench.errors import BackendError, ConfigError
from benchbench.reference.architectures import position_limit
from benchbench.scaling import RopeInfo, is_length_dependent, reference, resolve
from benchbench.scaling.transformers import (
    max_position_embeddings,
    rope_parameters,
    scaling_overrides,
)

log = logging.getLogger(__name__)


# llama.cpp pre-tokenizers that cut every digit out on its own before the GPT-2
# split (tokenizer.ggml.pre in the GGUF); transformers' GGUF conversion ignores
# that key and keeps the GPT-2 split alone, so "\n   2" would become
# "\n  " + " " + "2" instead of "\n   " + "2"
DIGITS_FIRST = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"}

# text whose ids must come out the same from llama.cpp and from transformers:
# digits after runs of spaces, code, contractions, tabs, blank lines, non-ASCII
TOKENIZER_PROBE = (
    "Tables:\n   2 1\n  x = f(12, 345)  # it's   fine\tdon't 3.14159\n\n"
    "    return [a for a in range(10)]  Ünïcödé — ½ 42nd, 2024-12-04 <|im_start|>"
)


def _import_torch():
    try:
        import torch
        import transformers
    except ImportError as err:
        raise BackendError(
            f"backend=transformers needs torch and transformers ({err}); run `bash scripts/setup.sh`"
        ) from None
    return torch, transformers


_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
RUNTIME_BYTES = 800 << 20


def memory_estimate(
    shape: dict, n_ctx: int, cfg: BackendConfig, n_params: int
) -> dict[str, int]:
    """Bytes a context of ``n_ctx`` tokens needs in transformers, by part.

    Weights: every parameter in ``backend.dtype``. KV cache: keys and values of
    every layer and position. Logits: one chunk of ``n_ubatch`` rows in float32,
    a float32 copy and a float64 log-softmax. Attention scores: one chunk
    against every position, per head, in case the kernel materializes them.
    Runtime: the process itself (torch, transformers, the tokenizer), the
    difference between the 2.18 GiB peak measured for SmolLM2 at 8192 tokens in
    float32 and the 1.37 GiB of the other parts.
    """
    size = _DTYPE_BYTES[cfg.dtype]
    chunk = min(cfg.n_ubatch, n_ctx)
    parts = {
        "weights": n_params * size,
        "kv_cache": 2
        * shape["layers"]
        * shape["heads_kv"]
        * shape["head_dim"]
        * n_ctx
        * size,
        "logits": chunk * shape["n_vocab"] * (4 + 4 + 8),
        "attention_scores": chunk * n_ctx * shape["heads"] * 4,
        "runtime": RUNTIME_BYTES,
    }
    parts["total"] = sum(parts.values())
    return parts


def check_device(torch, cfg: BackendConfig) -> None:
    """Refuse a device or attention kernel this torch cannot use, before loading."""
    kind = cfg.device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "backend.device",
            "cuda was asked for but torch sees no CUDA GPU; set backend.device=cpu",
        )
    if kind == "cuda" and ":" in cfg.device:
        index = int(cfg.device.split(":")[1])
        if index >= torch.cuda.device_count():
            raise ConfigError(
                "backend.device",
                f"torch sees {torch.cuda.device_count()} CUDA GPUs, so there is no {cfg.device}",
            )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            "backend.device",
            "this torch has no MPS (Apple GPU) support; set backend.device=cpu",
        )
    if cfg.attn_implementation == "flash_attention_2":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None or kind != "cuda":
            raise ConfigError(
                "backend.attn_implementation",
                "flash_attention_2 needs a CUDA device and the flash-attn package; use sdpa",
            )


def load_source(model_path: Path) -> tuple[str, dict]:
    """The first argument and keyword arguments for ``from_pretrained``."""
    if model_path.is_file():
        return str(model_path.parent), {"gguf_file": model_path.name}
    return str(model_path), {}


def match_llama_cpp_tokenizer(tokenizer, gguf_path: Path) -> dict:
    """Make transformers' tokenizer for a GGUF split text as llama.cpp does, and check it.

    Repairs the one known gap (the digit split, see ``DIGITS_FIRST``) and then
    compares both on ``TOKENIZER_PROBE``; any other difference is refused, since
    the model would be fed ids it was not trained on.
    """
    from tokenizers import pre_tokenizers

    from benchbench.backends.llama_cpp import open_vocab

    vocab = open_vocab(gguf_path)
    try:
        pre = vocab.metadata.get("tokenizer.ggml.pre")
        backend = tokenizer.backend_tokenizer
        repaired = pre in DIGITS_FIRST and isinstance(
            backend.pre_tokenizer, pre_tokenizers.ByteLevel
        )
        if repaired:
            backend.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Digits(individual_digits=True),
                    pre_tokenizers.ByteLevel(
                        add_prefix_space=False, trim_offsets=True, use_regex=True
                    ),
                ]
            )
        theirs = vocab.tokenize(
            TOKENIZER_PROBE.encode("utf-8"), add_bos=False, special=False
        )
    finally:
        vocab.close()
    ours = tokenizer(
        TOKENIZER_PROBE, add_special_tokens=False, split_special_tokens=True
    )["input_ids"]
    if ours != theirs:
        at = next(
            (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
            min(len(ours), len(theirs)),
        )
        raise BackendError(
            f"model.path: transformers' reading of the GGUF tokenizer (pre-tokenizer '{pre}') splits text "
            f"differently from llama.cpp's (first at token {at}); load the original checkpoint folder "
            "with model.path=... or use backend=llama_cpp"
        )
    return {"gguf_pre_tokenizer": pre, "pre_tokenizer_repaired": repaired}


class HFTokenizer:
    """The parts of a backend a prompt needs, from a Hugging Face tokenizer alone.

    ``tokenizer`` is a folder or hub name, or a tokenizer already loaded.
    """

    def __init__(self, tokenizer):
        if isinstance(tokenizer, str):
            _, transformers = _import_torch()
            tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer)
        self._tok = tokenizer

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return self._tok.encode(
            text, add_special_tokens=False, split_special_tokens=not special
        )

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._tok.decode(list(tokens))

    @property
    def bos_token_id(self) -> int | None:
        return self._tok.bos_token_id

    @property
    def adds_bos(self) -> bool:
        # what the tokenizer does by default (lm-eval's hf model relies on it)
        ids = self._tok.encode("a")
        return self.bos_token_id is not None and ids[:1] == [self.bos_token_id]

    def chat_template(self) -> str | None:
        return self._tok.chat_template

    def close(self) -> None:
        pass


class TransformersBackend(Backend):
    """A causal language model in transformers, with benchbench's RoPE scaling applied."""

    name = "transformers"

    def __init__(
        self,
        model_path: Path,
        rope: RopeInfo,
        cfg: BackendConfig,
        scaling: ScalingConfig,
        n_ctx: int,
    ):
        torch, transformers = _import_torch()
        self._torch = torch
        self.n_ctx = n_ctx
        self._rope = rope
        self._scaling = resolve(scaling, rope)
        check_device(torch, cfg)
        self._device = torch.device(cfg.device)
        self._chunk = min(cfg.n_ubatch, n_ctx)
        self._prefix_cache = cfg.prefix_cache
        if cfg.n_threads:
            torch.set_num_threads(cfg.n_threads)

        self._encoding = rope.encoding
        source, kwargs = load_source(model_path)
        try:
            config = transformers.AutoConfig.from_pretrained(source, **kwargs)
            self._own_rope = dict(getattr(config, "rope_parameters", None) or {})
            if self._encoding == "rope":
                self._apply_scaling(config, scaling)
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, **kwargs
            )
            self._tokenizer_check = (
                match_llama_cpp_tokenizer(self._tokenizer, model_path)
                if model_path.is_file()
                else {}
            )
            self._model = transformers.AutoModelForCausalLM.from_pretrained(
                source,
                config=config,
                dtype=getattr(torch, cfg.dtype),
                attn_implementation=cfg.attn_implementation,
                **kwargs,
            ).to(self._device)
        except (OSError, ValueError, ImportError, KeyError, RuntimeError) as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise BackendError(
                f"model.path: transformers could not load '{model_path}': {type(err).__name__}: {message}"
            ) from None
        self._model.eval()
        self.position_limit = position_limit(self._encoding, self._model.config)
        # models whose positions are absolute (GPT-2, XGLM) take position ids;
        # ALiBi (BLOOM) counts positions from the cache and takes none
        self._takes_positions = (
            "position_ids" in inspect.signature(self._model.forward).parameters
        )
        self._pinned: tuple[int | None, dict] | None = None
        if self._encoding == "rope":
            self._rotary = self._find_rotary()
            self._rope_type = self._rotary.rope_type
            # benchbench sets the frequencies of length-dependent methods itself,
            # per request (see _pin_rope); transformers' own update would change
            # them between the chunks of one prompt and keep them across requests
            if is_length_dependent(self._scaling.method):
                self._rotary.rope_type = "default"
        else:
            # no rotary embedding to read back; the scaling is none (config checks)
            self._pinned = (None, {"encoding": self._encoding, "rope_type": None})
        self._cache = None
        self._cached: list[int] = []
        self._eog = self._end_of_generation_ids()
        self._settings = {
            "device": cfg.device,
            "dtype": cfg.dtype,
            "attn_implementation": cfg.attn_implementation,
            "chunk_tokens": self._chunk,
            "n_threads": torch.get_num_threads(),
            "prefix_cache": cfg.prefix_cache,
            **self._tokenizer_check,
        }
        self._effective = self._pin_rope(self._reference_length(n_ctx))

    # RoPE

    def _apply_scaling(self, config, scaling: ScalingConfig) -> None:
        """Write the resolved scaling into ``config`` before the model is built."""
        self._check_own_scaling(scaling)
        params = rope_parameters(self._scaling, self._rope)
        # a partial rotary (GPT-NeoX rotates only a fraction of each head) stays
        if "partial_rotary_factor" in self._own_rope:
            params["partial_rotary_factor"] = self._own_rope["partial_rotary_factor"]
        config.rope_parameters = params
        config.max_position_embeddings = max_position_embeddings(
            self._scaling, self._rope
        )

    def _check_own_scaling(self, scaling: ScalingConfig) -> None:
        # benchbench writes rope_parameters whole; a checkpoint trained with a
        # scaling must be run with that same method, given explicitly
        own = self._own_rope.get("rope_type", "default")
        if own == "default":
            return
        overrides = scaling_overrides(self._own_rope)
        if overrides[0] != f"scaling={scaling.method}":
            raise ConfigError(
                "scaling.method",
                f"the checkpoint scales RoPE with rope_type '{own}'; run it with "
                f"{' '.join(overrides)} (got scaling={scaling.method})",
            )

    def _find_rotary(self):
        # TODO: models with a second, local rotary embedding (Gemma 3) have only
        # the first one checked; check every one once their scaling is modelled
        for module in self._model.modules():
            if hasattr(module, "inv_freq") and hasattr(module, "attention_scaling"):
                return module
        raise BackendError(
            f"{type(self._model).__name__} has no rotary embedding with inv_freq; "
            "benchbench's RoPE scaling needs a RoPE model"
        )

    def _reference_length(self, seq_len: int) -> int | None:
        return seq_len if is_length_dependent(self._scaling.method) else None

    def _pin_rope(self, seq_len: int | None) -> dict:
        """Fix the rotations for a sequence of ``seq_len`` tokens and check them.

        For length-independent methods ``seq_len`` is None and nothing changes;
        the frequencies transformers built at load time are checked. The check
        is redone only when the length changes, not on every request.
        """
        if self._pinned is not None and (
            self._pinned[0] == seq_len or self._encoding != "rope"
        ):
            return self._pinned[1]
        torch = self._torch
        rotary = self._rotary
        if seq_len is not None:
            from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

            inv_freq, attention = ROPE_INIT_FUNCTIONS[self._rope_type](
                self._model.config, self._device, seq_len=seq_len
            )
            rotary.inv_freq.copy_(inv_freq.to(rotary.inv_freq.dtype))
            rotary.attention_scaling = attention
            self._drop_cache()

        effective = {
            "rope_type": self._rope_type,
            "seq_len": seq_len,
            "inv_freq": rotary.inv_freq.detach().to("cpu", torch.float64).tolist(),
            "attention_factor": float(rotary.attention_scaling),
        }
        want = reference.effective(self._scaling, self._rope, seq_len)
        check_rope("transformers", effective, want, self._scaling.method)
        # the length the rotations are fixed for, and what was read back then
        self._pinned = (seq_len, effective)
        return effective

    def effective_rope(self, seq_len: int | None = None) -> dict:
        """The frequencies and attention factor the model rotates with for ``seq_len`` tokens."""
        return self._pin_rope(self._reference_length(seq_len or self.n_ctx))

    # tokens

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return self._tokenizer(
            text, add_special_tokens=False, split_special_tokens=not special
        )["input_ids"]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._tokenizer.decode(
            list(tokens), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    @property
    def bos_token_id(self) -> int | None:
        return self._tokenizer.bos_token_id

    @property
    def eos_token_id(self) -> int | None:
        return self._tokenizer.eos_token_id

    @property
    def adds_bos(self) -> bool:
        bos = self.bos_token_id
        probe = self._tokenizer("a", add_special_tokens=True)["input_ids"]
        return bos is not None and probe[:1] == [bos]

    def chat_template(self) -> str | None:
        return self._tokenizer.chat_template

    def _end_of_generation_ids(self) -> set[int]:
        ids = set()
        for source in (self._model.config, self._model.generation_config):
            value = getattr(source, "eos_token_id", None)
            ids.update(value if isinstance(value, list) else [value])
        ids.add(self._tokenizer.eos_token_id)
        return {i for i in ids if i is not None}

    # forward passes

    def _drop_cache(self) -> None:
        self._cache = None
        self._cached = []

    def _forward(self, tokens: Sequence[int], start: int):
        """Feed ``tokens`` at positions ``start...`` through the cache, a chunk at a time.

        Yields ``(offset, logits)`` per chunk, logits of shape (chunk, n_vocab)
        in float32.
        """
        torch = self._torch
        from transformers import DynamicCache

        if self._cache is None:
            self._cache = DynamicCache(config=self._model.config)
        for begin in range(0, len(tokens), self._chunk):
            chunk = list(tokens[begin : begin + self._chunk])
            ids = torch.tensor([chunk], device=self._device)
            positions = {}
            if self._takes_positions:
                positions["position_ids"] = torch.arange(
                    start + begin, start + begin + len(chunk), device=self._device
                )[None, :]
            out = self._model(
                input_ids=ids,
                past_key_values=self._cache,
                use_cache=True,
                **positions,
            )
            yield begin, out.logits[0].float()

    def score(self, tokens: Sequence[int]) -> TokenScores:
        torch = self._torch
        tokens = list(tokens)
        self.check_fits(len(tokens))
        self._pin_rope(self._reference_length(len(tokens)))
        self._drop_cache()
        n = len(tokens) - 1
        logprobs = np.empty(n, dtype=np.float64)
        argmax = np.empty(n, dtype=np.int64)
        targets = torch.tensor(tokens[1:], device=self._device)
        with torch.inference_mode():
            for begin, logits in self._forward(tokens, 0):
                # row j predicts token begin + j + 1; the final token predicts nothing
                rows = logits[: max(0, min(len(logits), n - begin))]
                if not len(rows):
                    continue
                logsoftmax = torch.log_softmax(rows.double(), dim=-1)
                picked = logsoftmax.gather(1, targets[begin : begin + len(rows), None])[
                    :, 0
                ]
                logprobs[begin : begin + len(rows)] = picked.cpu().numpy()
                argmax[begin : begin + len(rows)] = rows.argmax(dim=-1).cpu().numpy()
        self._cached = list(tokens)
        return TokenScores(logprobs=logprobs, argmax=argmax)

    def _keep_prefix(self, tokens: list[int]) -> int:
        """Keep the cached keys and values of the prefix ``tokens`` shares with the cache."""
        if not self._prefix_cache or self._cache is None:
            self._drop_cache()
            return 0
        kept = shared_prefix(self._cached, tokens)
        if kept == 0:
            self._drop_cache()
            return 0
        surplus = self._cache.get_seq_length() - kept
        if surplus > 0:
            # transformers crops by a negative count of tokens to remove
            self._cache.crop(-surplus)
        self._cached = self._cached[:kept]
        return kept

    def _prefill(self, tokens: list[int], max_new_tokens: int):
        # a length-dependent method rotates for the whole sequence the request reaches
        self._pin_rope(self._reference_length(len(tokens) + max_new_tokens))
        kept = self._keep_prefix(tokens)
        with self._torch.inference_mode():
            *_, (_, logits) = self._forward(tokens[kept:], kept)
        self._cached = list(tokens)
        return kept, logits[-1].cpu().numpy()

    def _extend(self, token: int) -> np.ndarray:
        with self._torch.inference_mode():
            *_, (_, logits) = self._forward([token], len(self._cached))
        self._cached.append(token)
        return logits[-1].cpu().numpy()

    def _ends_generation(self, token: int) -> bool:
        return token in self._eog

    # bookkeeping

    @property
    def version(self) -> str:
        return f"transformers {version('transformers')}, torch {version('torch')}"

    def provenance(self) -> dict:
        return {
            "name": self.name,
            "transformers": version("transformers"),
            "torch": version("torch"),
            "model_class": type(self._model).__name__,
            "n_ctx_requested": self.n_ctx,
            **self._settings,
            "encoding": self._encoding,
            "position_limit": self.position_limit,
            "rope_parameters": dict(
                getattr(self._model.config, "rope_parameters", None) or {}
            ),
            "rope_parameters_in_file": self._own_rope,
            "rope_effective": self._effective,
        }

    def close(self) -> None:
        self._drop_cache()
        self._model = None
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()
