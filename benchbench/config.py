"""Typed schemas for every Hydra config group.

Each YAML option under ``conf/<group>/`` is merged onto one of these dataclasses,
so a misspelt key or a value of the wrong type fails at composition time.
Range checks that a type cannot express live in each schema's ``validate``;
``to_settings`` runs them all once the composed config is turned into objects.
"""

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchbench.errors import ConfigError

SCALING_METHODS = ("none", "linear", "ntk", "dynamic", "yarn", "longrope", "llama3")
# position encodings a reference model can be trained with (conf/encoding/)
ENCODINGS = ("sinusoidal", "learned", "rope", "alibi", "nope")
BACKENDS = ("llama_cpp", "transformers")
# a device, optionally with an index as in cuda:1
DEVICE_PATTERN = re.compile(r"^(cpu|cuda|mps)(:\d+)?$")
DTYPES = ("float32", "bfloat16", "float16")
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
BOS_POLICIES = ("model", "always", "never")
PROMPT_FORMATS = ("completion", "chat")
KV_CACHE_TYPES = ("f32", "f16", "q8_0", "q4_0")
# far past any published extension (LongRoPE reaches 2M tokens from 4K: 512x)
MAX_SCALING_FACTOR = 1024


@dataclass
class ReferenceConfig:
    """How a reference model is trained (``model=reference``).

    A small decoder-only model trained here on the corpus, mixed with passkey
    sequences, at ``context_length`` tokens; only ``encoding`` differs between
    the schemes. The trained checkpoint is cached under ``cache_dir`` by a hash
    of these settings, the encoding and the corpus.
    """

    # training length in tokens: every training sequence has exactly this many
    context_length: int = 256
    layers: int = 4
    width: int = 192
    heads: int = 4
    # tokens of the byte-level BPE vocabulary learnt from the training text
    vocab_size: int = 1024
    steps: int = 560
    batch_size: int = 16
    learning_rate: float = 3e-3
    # share of training sequences that are passkey prompts with their answer
    passkey_fraction: float = 0.5
    # characters at the start of the corpus kept out of training, so that
    # perplexity windows read text the model has not seen
    heldout_characters: int = 65536
    seed: int = 0
    # null: $XDG_CACHE_HOME/benchbench/reference (~/.cache/benchbench/reference)
    cache_dir: str | None = None

    def validate(self) -> None:
        for key in (
            "context_length",
            "layers",
            "width",
            "heads",
            "steps",
            "batch_size",
        ):
            if getattr(self, key) <= 0:
                raise ConfigError(
                    f"model.reference.{key}",
                    f"must be positive, got {getattr(self, key)}",
                )
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ConfigError(
                "model.reference.width",
                f"{self.width} must split into {self.heads} heads of an even width "
                "(model.reference.heads)",
            )
        if self.vocab_size < 300:
            raise ConfigError(
                "model.reference.vocab_size",
                f"must be at least 300 (256 bytes and a few merges), got {self.vocab_size}",
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(
                "model.reference.learning_rate",
                f"must be a positive number, got {self.learning_rate}",
            )
        if not 0.0 <= self.passkey_fraction <= 1.0:
            raise ConfigError(
                "model.reference.passkey_fraction",
                f"must lie in [0, 1], got {self.passkey_fraction}",
            )
        if self.heldout_characters < 0 or self.seed < 0:
            key = "heldout_characters" if self.heldout_characters < 0 else "seed"
            raise ConfigError(
                f"model.reference.{key}",
                f"must not be negative, got {getattr(self, key)}",
            )


@dataclass
class EncodingConfig:
    """The position encoding a reference model is trained with (``encoding=...``)."""

    scheme: str = "rope"
    # RoPE's base; only the rope scheme reads it
    rope_theta: float | None = None

    def validate(self) -> None:
        if self.scheme not in ENCODINGS:
            raise ConfigError(
                "encoding.scheme",
                f"unknown scheme '{self.scheme}'; use one of {', '.join(ENCODINGS)}",
            )
        if self.scheme == "rope":
            if self.rope_theta is None or not (
                math.isfinite(self.rope_theta) and self.rope_theta > 1
            ):
                raise ConfigError(
                    "encoding.rope_theta",
                    f"RoPE needs a base above 1, got {self.rope_theta}",
                )
        elif self.rope_theta is not None:
            raise ConfigError(
                "encoding.rope_theta",
                f"only applies to encoding=rope, not '{self.scheme}'; unset it",
            )


@dataclass
class ModelConfig:
    """Which weights to evaluate and what is known about them."""

    name: str = "model"
    # a GGUF file on disk; when null, the file is looked up inside `package`
    path: str | None = None
    package: str | None = None
    package_file: str | None = None
    # what the file is expected to say; a mismatch with the GGUF is an error
    trained_context_length: int | None = None
    rope_theta: float | None = None
    encoding: str = "rope"
    # shown when the model file is missing, so the user knows what to fetch
    hint: str = ""
    # set for model=reference: the model is trained here rather than read
    reference: ReferenceConfig | None = None

    def validate(self) -> None:
        if self.reference is not None:
            self.reference.validate()
            if self.path is not None or self.package is not None:
                raise ConfigError(
                    "model.path",
                    "model=reference trains its own weights; unset model.path and model.package",
                )
            return
        if self.path is None and self.package is None:
            raise ConfigError(
                "model.path",
                f"model '{self.name}' needs a GGUF file; {self.hint or 'set model.path=/path/to/model.gguf'}",
            )
        if self.package is not None and self.package_file is None:
            raise ConfigError(
                "model.package_file", "name the GGUF file inside model.package"
            )


@dataclass
class BackendConfig:
    """How the inference engine is set up.

    ``n_ctx``, ``n_batch``, ``n_ubatch``, ``n_threads`` and ``prefix_cache`` apply
    to both backends (transformers feeds prompts ``n_ubatch`` tokens at a time);
    ``n_gpu_layers``, ``flash_attn`` and the KV cache types are llama.cpp's;
    ``device``, ``dtype`` and ``attn_implementation`` are transformers'.
    """

    name: str = "llama_cpp"
    # context window in tokens; null sizes it to the longest requested length
    n_ctx: int | None = None
    n_batch: int = 2048
    n_ubatch: int = 512
    # null uses every core the process may run on
    n_threads: int | None = None
    # layers to offload to a GPU; needs a CUDA or Metal build of llama-cpp-python
    n_gpu_layers: int = 0
    flash_attn: bool = True
    # KV cache element types, as llama.cpp's --cache-type-k / --cache-type-v
    type_k: str = "f16"
    type_v: str = "f16"
    # reuse the cached keys and values of a prompt prefix shared with the
    # previous prompt; results are the same, only faster
    prefix_cache: bool = True
    # transformers only: where the model runs, its weight type, and the attention kernel
    device: str = "cpu"
    dtype: str = "float32"
    attn_implementation: str = "sdpa"

    def validate(self) -> None:
        if self.name not in BACKENDS:
            raise ConfigError(
                "backend.name",
                f"unknown backend '{self.name}'; use one of {', '.join(BACKENDS)}",
            )
        if not DEVICE_PATTERN.match(self.device):
            raise ConfigError(
                "backend.device",
                f"unknown value '{self.device}'; use cpu, cuda, cuda:N or mps",
            )
        for key, allowed in (
            ("dtype", DTYPES),
            ("attn_implementation", ATTENTION_IMPLEMENTATIONS),
        ):
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(
                    f"backend.{key}",
                    f"unknown value '{value}'; use one of {', '.join(allowed)}",
                )
        if self.n_ctx is not None and self.n_ctx <= 0:
            raise ConfigError("backend.n_ctx", f"must be positive, got {self.n_ctx}")
        for key in ("n_batch", "n_ubatch"):
            if getattr(self, key) <= 0:
                raise ConfigError(
                    f"backend.{key}", f"must be positive, got {getattr(self, key)}"
                )
        for key in ("type_k", "type_v"):
            if getattr(self, key) not in KV_CACHE_TYPES:
                raise ConfigError(
                    f"backend.{key}",
                    f"unknown type '{getattr(self, key)}'; use one of {', '.join(KV_CACHE_TYPES)}",
                )
        if self.type_v != "f16" and self.type_v != "f32" and not self.flash_attn:
            raise ConfigError(
                "backend.type_v",
                "a quantized V cache needs backend.flash_attn=true in llama.cpp",
            )
        if self.n_threads is not None and self.n_threads <= 0:
            raise ConfigError(
                "backend.n_threads", f"must be positive, got {self.n_threads}"
            )


# the keys each method reads beyond `factor` and `original_context_length`
METHOD_KEYS = {
    "yarn": ("beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim"),
    "longrope": ("short_factor", "long_factor", "attention_factor"),
    "llama3": ("low_freq_factor", "high_freq_factor"),
}


@dataclass
class ScalingConfig:
    """A RoPE scaling method, in the terms of the papers that define it.

    ``factor`` is the context extension ratio s. ``original_context_length`` is
    the context the model was trained on (null: the model file's). The other
    keys belong to one method each (see ``METHOD_KEYS``); unset ones take the
    method's published defaults. ``benchbench/scaling/reference.py`` holds the
    formulas.
    """

    method: str = "none"
    factor: float = 1.0
    original_context_length: int | None = None
    # YaRN's ramp bounds, in rotations over the original context (32 and 1)
    beta_fast: float | None = None
    beta_slow: float | None = None
    # the factor cos and sin are multiplied by; null: the method's default
    # (YaRN 0.1 ln(s) + 1, LongRoPE sqrt(1 + ln(s) / ln(original))
    attention_factor: float | None = None
    # YaRN as DeepSeek writes it: attention factor m(s, mscale) / m(s, mscale_all_dim)
    mscale: float | None = None
    mscale_all_dim: float | None = None
    # LongRoPE's per-pair rescale factors: short up to the original context, long past it
    short_factor: list[float] | None = None
    long_factor: list[float] | None = None
    # llama3's band edges: wavelengths above original / low_freq_factor are
    # interpolated, below original / high_freq_factor kept (defaults 1 and 4)
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None

    def validate(self) -> None:
        if self.method not in SCALING_METHODS:
            raise ConfigError(
                "scaling.method",
                f"unknown method '{self.method}'; use one of {', '.join(SCALING_METHODS)}",
            )
        if not math.isfinite(self.factor) or self.factor < 1.0:
            raise ConfigError(
                "scaling.factor", f"must be a number >= 1, got {self.factor}"
            )
        if self.factor > MAX_SCALING_FACTOR:
            raise ConfigError(
                "scaling.factor",
                f"{self.factor:g} is beyond any context extension ({MAX_SCALING_FACTOR} at most)",
            )
        if self.method == "none" and self.factor != 1.0:
            raise ConfigError(
                "scaling.factor",
                "scaling=none takes no factor; pick a method such as scaling=yarn",
            )
        if (
            self.original_context_length is not None
            and self.original_context_length <= 0
        ):
            raise ConfigError(
                "scaling.original_context_length",
                f"must be positive, got {self.original_context_length}",
            )
        if self.original_context_length is not None and self.method in (
            "none",
            "linear",
            "ntk",
        ):
            raise ConfigError(
                "scaling.original_context_length",
                f"is not read by scaling={self.method}, whose rotations do not depend on it; unset it",
            )
        own = METHOD_KEYS.get(self.method, ())
        for key in sorted({k for keys in METHOD_KEYS.values() for k in keys}):
            if key not in own and getattr(self, key) is not None:
                users = [m for m, keys in METHOD_KEYS.items() if key in keys]
                raise ConfigError(
                    f"scaling.{key}",
                    f"only applies to scaling={' or '.join(users)}, not '{self.method}'",
                )
        for key in (
            "beta_fast",
            "beta_slow",
            "attention_factor",
            "mscale",
            "mscale_all_dim",
            "low_freq_factor",
            "high_freq_factor",
        ):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"scaling.{key}", f"must be a positive number, got {value}"
                )
        _check_order(
            "beta_slow", self.beta_slow, 1.0, "beta_fast", self.beta_fast, 32.0
        )
        if self.attention_factor is not None and self.mscale is not None:
            raise ConfigError(
                "scaling.mscale",
                "give either scaling.attention_factor or scaling.mscale, not both",
            )
        if (self.mscale is None) != (self.mscale_all_dim is None):
            raise ConfigError(
                "scaling.mscale_all_dim",
                "scaling.mscale and scaling.mscale_all_dim go together; set both or neither",
            )
        _check_order(
            "low_freq_factor",
            self.low_freq_factor,
            1.0,
            "high_freq_factor",
            self.high_freq_factor,
            4.0,
        )
        if self.method == "longrope":
            for key in ("short_factor", "long_factor"):
                values = getattr(self, key)
                if not values:
                    raise ConfigError(
                        f"scaling.{key}",
                        "scaling=longrope needs a list of per-pair factors (rotary dimensions / 2 numbers)",
                    )
                bad = [v for v in values if not (math.isfinite(v) and v > 0)]
                if bad:
                    raise ConfigError(
                        f"scaling.{key}",
                        f"factors must be positive numbers, got {bad[0]}",
                    )
            if len(self.short_factor) != len(self.long_factor):
                raise ConfigError(
                    "scaling.long_factor",
                    f"has {len(self.long_factor)} numbers but scaling.short_factor has {len(self.short_factor)}",
                )


def _check_order(low_key, low, low_default, high_key, high, high_default) -> None:
    """Refuse a pair whose lower bound is not below its upper one, naming a key the user set."""
    low_value = low if low is not None else low_default
    high_value = high if high is not None else high_default
    if high_value > low_value:
        return
    if high is None:
        raise ConfigError(
            f"scaling.{low_key}",
            f"must be smaller than scaling.{high_key} (default {high_default:g}), got {low_value:g}",
        )
    raise ConfigError(
        f"scaling.{high_key}",
        f"must be larger than scaling.{low_key} ({high_value:g} <= {low_value:g}); are they reversed?",
    )


@dataclass
class PromptTaskConfig:
    """Settings shared by the retrieval tasks (passkey and needle)."""

    # folder under tasks/ with the prompt pieces as text files
    template_dir: str = "tasks/passkey"
    prompt_format: str = "completion"
    max_new_tokens: int = 8

    def validate(self) -> None:
        if self.prompt_format not in PROMPT_FORMATS:
            raise ConfigError(
                f"task.{self._name}.prompt_format",
                f"unknown format '{self.prompt_format}'; use one of {', '.join(PROMPT_FORMATS)}",
            )
        if self.max_new_tokens <= 0:
            raise ConfigError(
                f"task.{self._name}.max_new_tokens",
                f"must be positive, got {self.max_new_tokens}",
            )


@dataclass
class PasskeyConfig(PromptTaskConfig):
    _name = "passkey"
    template_dir: str = "tasks/passkey"
    max_new_tokens: int = 10
    digits: int = 5

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.digits <= 18:
            raise ConfigError(
                "task.passkey.digits", f"must be between 1 and 18, got {self.digits}"
            )


@dataclass
class NeedleConfig(PromptTaskConfig):
    _name = "needle"
    template_dir: str = "tasks/needle"
    max_new_tokens: int = 12


@dataclass
class PerplexityConfig:
    _name = "perplexity"
    # windows of context_length tokens scored per length
    windows: int = 1
    # tokens between window starts; null means the longest length - 1
    stride: int | None = None
    # model: follow the GGUF's add_bos_token; always / never override it
    bos: str = "model"
    # score every length from one pass at the longest, where the scaling allows
    one_pass: bool = True

    def validate(self) -> None:
        if self.windows <= 0:
            raise ConfigError(
                "task.perplexity.windows", f"must be positive, got {self.windows}"
            )
        if self.stride is not None and self.stride <= 0:
            raise ConfigError(
                "task.perplexity.stride", f"must be positive, got {self.stride}"
            )
        if self.bos not in BOS_POLICIES:
            raise ConfigError(
                "task.perplexity.bos",
                f"unknown policy '{self.bos}'; use one of {', '.join(BOS_POLICIES)}",
            )


@dataclass
class TaskSet:
    """The tasks selected with ``task=[...]``; unselected ones stay null."""

    passkey: PasskeyConfig | None = None
    needle: NeedleConfig | None = None
    perplexity: PerplexityConfig | None = None

    def validate(self) -> None:
        if not self.selected():
            raise ConfigError(
                "task", "no task selected; use e.g. task=[passkey,needle,perplexity]"
            )
        for cfg in self.selected().values():
            cfg.validate()

    def selected(self) -> dict:
        return {name: cfg for name, cfg in vars(self).items() if cfg is not None}


@dataclass
class SweepConfig:
    """The grid of lengths, depths and samples a run measures."""

    name: str = "sweep"
    # total tokens per sample, prompt and answer budget included
    context_lengths: list[int] = field(default_factory=lambda: [1024])
    # fraction of the haystack that precedes the needle: 0 = start, 1 = end
    depths: list[float] = field(default_factory=lambda: [0.5])
    samples: int = 1

    def validate(self) -> None:
        lengths = list(self.context_lengths)
        if not lengths:
            raise ConfigError(
                "sweep.context_lengths", "is empty; give at least one length in tokens"
            )
        bad = [n for n in lengths if n <= 0]
        if bad:
            raise ConfigError(
                "sweep.context_lengths", f"lengths must be positive, got {bad[0]}"
            )
        if len(set(lengths)) != len(lengths):
            raise ConfigError("sweep.context_lengths", f"has duplicates: {lengths}")
        if lengths != sorted(lengths):
            raise ConfigError(
                "sweep.context_lengths", f"must be in increasing order, got {lengths}"
            )
        depths = list(self.depths)
        if not depths:
            raise ConfigError(
                "sweep.depths", "is empty; give at least one depth in [0, 1]"
            )
        bad = [d for d in depths if not 0.0 <= d <= 1.0]
        if bad:
            raise ConfigError(
                "sweep.depths", f"depths must lie in [0, 1], got {bad[0]}"
            )
        if len(set(depths)) != len(depths):
            raise ConfigError("sweep.depths", f"has duplicates: {depths}")
        if self.samples <= 0:
            raise ConfigError("sweep.samples", f"must be positive, got {self.samples}")


@dataclass
class CorpusConfig:
    """Long real text used as haystack and for perplexity."""

    # pydoc: the Python reference documentation shipped with the interpreter
    # files: the UTF-8 text files listed in `paths`, joined in order
    source: str = "pydoc"
    paths: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.source not in ("pydoc", "files"):
            raise ConfigError(
                "corpus.source", f"unknown source '{self.source}'; use pydoc or files"
            )
        if self.source == "pydoc" and self.paths:
            raise ConfigError(
                "corpus.paths", "is only read with corpus=files; add corpus=files"
            )
        if self.source == "files" and not self.paths:
            raise ConfigError(
                "corpus.paths",
                "corpus=files needs corpus.paths=[/path/to/text.txt,...]",
            )


@dataclass
class Settings:
    """The whole resolved configuration of one run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    # selected for model=reference only; a pretrained model's encoding is its own
    encoding: EncodingConfig | None = None
    task: TaskSet = field(default_factory=TaskSet)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    seed: int = 1234
    results_dir: str = "results"
    # continue an unfinished run: true picks the newest one under results_dir
    # made with this same config; a path names the run directory
    resume: str | None = None

    def validate(self) -> None:
        for part in (
            self.model,
            self.backend,
            self.scaling,
            self.task,
            self.sweep,
            self.corpus,
        ):
            part.validate()
        check_encoding(self.model, self.encoding, self.scaling, self.backend)
        if self.seed < 0:
            raise ConfigError(
                "seed", f"must be a non-negative integer, got {self.seed}"
            )
        if not self.results_dir.strip():
            raise ConfigError(
                "results_dir", "is empty; name a folder, e.g. results_dir=results"
            )


def check_encoding(
    model: ModelConfig,
    encoding: EncodingConfig | None,
    scaling: ScalingConfig,
    backend: BackendConfig,
) -> None:
    """Refuse an encoding, scaling or backend that the selected model cannot take."""
    if model.reference is None:
        if encoding is not None:
            raise ConfigError(
                "encoding",
                f"encoding={encoding.scheme} chooses how model=reference is trained; model "
                f"'{model.name}' keeps the {model.encoding} positions of its file. Drop encoding= "
                "or add model=reference",
            )
        return
    if encoding is None:
        raise ConfigError(
            "encoding", "model=reference needs a position encoding, e.g. encoding=rope"
        )
    encoding.validate()
    if model.encoding != encoding.scheme:
        raise ConfigError(
            "model.encoding",
            f"is '{model.encoding}' but encoding={encoding.scheme}; leave model.encoding as "
            "model=reference sets it",
        )
    if scaling.method != "none" and encoding.scheme != "rope":
        raise ConfigError(
            "scaling",
            f"scaling={scaling.method} rescales rotary positions, and encoding={encoding.scheme} "
            "has none; use scaling=none or encoding=rope",
        )
    if backend.name != "transformers":
        raise ConfigError(
            "backend",
            f"model=reference is a transformers checkpoint; use backend=transformers, not {backend.name}",
        )


def register_schemas() -> None:
    """Make the schemas known to Hydra as ``benchbench_schema``."""
    ConfigStore.instance().store(name="benchbench_schema", node=Settings)


def _unknown_key(node, schema, prefix: str = "") -> str | None:
    """The first key in ``node`` that ``schema`` does not declare (``+key=`` adds such keys)."""
    declared = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in node.items():
        if key not in declared:
            return f"{prefix}{key}"
        inner = _dataclass_of(declared[key].type)
        if inner is not None and isinstance(value, dict):
            found = _unknown_key(value, inner, f"{prefix}{key}.")
            if found:
                return found
    return None


def _dataclass_of(annotation):
    """The dataclass behind ``X`` or ``X | None``, if any."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def to_settings(cfg: DictConfig, schema: type = Settings):
    """Turn a composed Hydra config into validated ``schema`` objects."""
    unknown = _unknown_key(OmegaConf.to_container(cfg, resolve=False), schema)
    if unknown:
        raise ConfigError(
            unknown, "is not a benchbench setting; check the spelling (see `--cfg job`)"
        )
    try:
        settings = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or "config"
        message = str(err).splitlines()[0]
        raise ConfigError(key, message) from None
    settings.validate()
    return settings
