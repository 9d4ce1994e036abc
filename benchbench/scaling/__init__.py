"""RoPE scaling methods: one definition each, translated to every backend.

Methods (s = ``scaling.factor``, L0 = ``original_context_length``, d = rotary
dimensions, theta = the RoPE base; formulas in ``reference.py``):

- ``none``: RoPE as the model file stores it.
- ``linear``: position interpolation (Chen et al. 2023), position p is read as p / s.
- ``ntk``: NTK-aware base change (bloc97, 2023), theta becomes theta * s^(d / (d - 2)).
- ``dynamic``: dynamic NTK (emozilla, 2023), the NTK base recomputed from the
  sequence length L: theta * (s L / L0 - (s - 1))^(d / (d - 2)) once L > L0.
- ``yarn``: YaRN (Peng et al. 2023), per-pair blend of interpolation and
  extrapolation between the ramp bounds ``beta_fast`` / ``beta_slow``, and an
  attention factor 0.1 ln(s) + 1.
- ``longrope``: LongRoPE (Ding et al. 2024), a rescale factor per pair, one
  list up to L0 (``short_factor``) and one past it (``long_factor``).
- ``llama3``: Llama 3.1's frequency-band rule, long wavelengths divided by s,
  short ones kept, a smooth blend between ``low_freq_factor`` and ``high_freq_factor``.

``dynamic`` and ``longrope`` depend on the length of the sequence being
evaluated. benchbench fixes that length per request, as the whole sequence the
request will reach (a scored sequence, or a prompt plus its answer budget), so
that every token of a request, in every chunk, is rotated with the same
frequencies and nothing carries over from an earlier request.
"""

import dataclasses
from dataclasses import dataclass

from benchbench.config import ScalingConfig
from benchbench.errors import ConfigError

# YaRN's ramp bounds and llama3's band edges as their papers publish them
YARN_BETA_FAST = 32.0
YARN_BETA_SLOW = 1.0
LLAMA3_LOW_FREQ_FACTOR = 1.0
LLAMA3_HIGH_FREQ_FACTOR = 4.0

LENGTH_DEPENDENT = ("dynamic", "longrope")


@dataclass(frozen=True)
class RopeInfo:
    """RoPE facts read from the model file."""

    rope_theta: float
    rope_dimensions: int
    trained_context_length: int
    # the frequency scale the model was trained with (1 for most models)
    freq_scale_train: float = 1.0
    # YaRN ramp bounds stored in the model file, if any
    yarn_beta_fast: float | None = None
    yarn_beta_slow: float | None = None
    # the scaling type the file itself declares (GGUF rope.scaling.type)
    file_scaling_type: str = "none"
    # per-pair divisors of the frequencies stored in the file as a tensor
    # (GGUF rope_freqs.weight; Llama 3.1 files carry their llama3 scaling so)
    rope_freqs: tuple[float, ...] | None = None
    # the model's position encoding; only "rope" models have the facts above
    # (a reference model may use sinusoidal, learned, alibi or nope instead)
    encoding: str = "rope"


def is_length_dependent(method: str) -> bool:
    """Whether a method's rotations depend on the length of the whole sequence.

    Dynamic NTK recomputes its base from it and LongRoPE switches factor lists
    at the original context; every other method rotates a token by its
    position alone.
    """
    return method in LENGTH_DEPENDENT


def resolve(scaling: ScalingConfig, rope: RopeInfo) -> ScalingConfig:
    """``scaling`` with every unset parameter filled in, checked against the model.

    Defaults come from the model file first (original context, YaRN betas),
    then from the method's paper.
    """
    if rope.file_scaling_type not in ("none", "linear"):
        raise ConfigError(
            "model.path",
            f"the model file applies its own RoPE scaling (rope.scaling.type={rope.file_scaling_type}), "
            "which benchbench cannot check; use a file without it",
        )
    if rope.rope_freqs is not None and scaling.method != "none":
        raise ConfigError(
            "scaling.method",
            "the model file already rescales every rotary pair (a rope_freqs tensor, as Llama 3.1 "
            f"GGUF files carry); '{scaling.method}' would be stacked on top of it. Use scaling=none, "
            "or load the original checkpoint folder with backend=transformers",
        )
    original = scaling.original_context_length or rope.trained_context_length
    if original > rope.trained_context_length:
        raise ConfigError(
            "scaling.original_context_length",
            f"is {original} but the model was trained on {rope.trained_context_length} tokens; "
            "the original context cannot be longer than the model's own",
        )
    filled = {"original_context_length": original}
    if scaling.method == "yarn":
        filled["beta_fast"] = scaling.beta_fast or rope.yarn_beta_fast or YARN_BETA_FAST
        filled["beta_slow"] = scaling.beta_slow or rope.yarn_beta_slow or YARN_BETA_SLOW
        if filled["beta_fast"] <= filled["beta_slow"]:
            raise ConfigError(
                "scaling.beta_fast",
                f"must be larger than beta_slow ({filled['beta_fast']:g} <= {filled['beta_slow']:g}, "
                "counting values from the model file)",
            )
    if scaling.method == "llama3":
        filled["low_freq_factor"] = scaling.low_freq_factor or LLAMA3_LOW_FREQ_FACTOR
        filled["high_freq_factor"] = scaling.high_freq_factor or LLAMA3_HIGH_FREQ_FACTOR
    if scaling.method == "longrope":
        pairs = rope.rope_dimensions // 2
        for key in ("short_factor", "long_factor"):
            values = getattr(scaling, key)
            if len(values) != pairs:
                raise ConfigError(
                    f"scaling.{key}",
                    f"has {len(values)} numbers but this model rotates {pairs} pairs "
                    f"(rotary dimensions {rope.rope_dimensions} / 2); give one factor per pair",
                )
        filled["short_factor"] = [float(v) for v in scaling.short_factor]
        filled["long_factor"] = [float(v) for v in scaling.long_factor]
    return dataclasses.replace(scaling, **filled)


def describe(scaling: ScalingConfig, rope: RopeInfo | None = None) -> dict:
    """A flat summary of the method for records and tables."""
    from benchbench.scaling.reference import attention_factor

    summary = {"method": scaling.method, "factor": scaling.factor}
    if rope is None:
        return summary
    resolved = resolve(scaling, rope)
    summary["original_context_length"] = resolved.original_context_length
    if scaling.method in ("yarn", "longrope"):
        # LongRoPE's factor is the same at every length; only its lists switch
        summary["attention_factor"] = attention_factor(resolved, rope)
    for key in (
        "beta_fast",
        "beta_slow",
        "mscale",
        "mscale_all_dim",
        "low_freq_factor",
        "high_freq_factor",
        "short_factor",
        "long_factor",
    ):
        if getattr(resolved, key) is not None:
            summary[key] = getattr(resolved, key)
    return summary
