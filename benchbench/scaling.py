"""RoPE scaling methods and their translation to llama.cpp's context parameters.

Definitions (s = ``scaling.factor``, d = rotary dimensions, theta = RoPE base):

- ``linear``: position interpolation (Chen et al. 2023); position p is read as
  p / s, which llama.cpp expresses as ``rope_freq_scale = 1 / s``.
- ``ntk``: NTK-aware base change (bloc97, 2023); positions stay, the base
  becomes theta * s^(d / (d - 2)), so the lowest frequency is interpolated by s
  and the highest is left alone. llama.cpp has no flag for it; a changed
  ``rope_freq_base`` with scaling type NONE is the exact equivalent.
- ``yarn``: YaRN (Peng et al. 2023); per-dimension blend of interpolation and
  extrapolation between the ramp bounds beta_fast / beta_slow, plus an
  attention temperature sqrt(1/t) = 0.1 ln(s) + 1.

Any llama.cpp parameter the config leaves unset is passed as llama.cpp's own
"take it from the model file" value, never as the Python wrapper's default.
"""

import math
from dataclasses import dataclass

import llama_cpp

from benchbench.config import ScalingConfig
from benchbench.errors import ConfigError


@dataclass(frozen=True)
class RopeInfo:
    """RoPE facts read from the model file."""

    rope_theta: float
    rope_dimensions: int
    trained_context_length: int
    # the frequency scale the model was trained with (1 for most models)
    freq_scale_train: float = 1.0


def is_length_dependent(method: str) -> bool:
    """Whether a method's rotations depend on the current sequence length.

    Only dynamic NTK does (its base grows with the sequence); for every method
    here, a token's rotation depends on its position alone.
    """
    return method == "dynamic"


def yarn_attention_factor(factor: float) -> float:
    """YaRN's default attention temperature sqrt(1/t) = 0.1 ln(s) + 1."""
    return 0.1 * math.log(factor) + 1.0 if factor > 1.0 else 1.0


def ntk_rope_theta(rope_theta: float, factor: float, rope_dimensions: int) -> float:
    """NTK-aware base: theta * s^(d / (d - 2))."""
    return rope_theta * factor ** (rope_dimensions / (rope_dimensions - 2))


def llama_cpp_params(scaling: ScalingConfig, rope: RopeInfo) -> dict:
    """Keyword arguments for ``llama_cpp.Llama`` that apply ``scaling``.

    Values of -1 or 0 are llama.cpp's markers for "as stored in the GGUF".
    """
    params = {
        "rope_scaling_type": llama_cpp.LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED,
        "rope_freq_base": 0.0,
        "rope_freq_scale": 0.0,
        "yarn_ext_factor": -1.0,
        "yarn_attn_factor": -1.0,
        "yarn_beta_fast": -1.0,
        "yarn_beta_slow": -1.0,
        "yarn_orig_ctx": 0,
    }
    s = scaling.factor

    if scaling.method == "linear":
        params["rope_scaling_type"] = llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR
        params["rope_freq_scale"] = 1.0 / s
    elif scaling.method == "ntk":
        params["rope_scaling_type"] = llama_cpp.LLAMA_ROPE_SCALING_TYPE_NONE
        params["rope_freq_base"] = ntk_rope_theta(
            rope.rope_theta, s, rope.rope_dimensions
        )
    elif scaling.method == "yarn":
        default = yarn_attention_factor(s)
        if scaling.attention_factor is not None and not math.isclose(
            scaling.attention_factor, default, rel_tol=1e-6
        ):
            # llama.cpp recomputes the magnitude scale from the factor and
            # ignores any value passed in, so a custom one cannot be honoured
            raise ConfigError(
                "scaling.attention_factor",
                f"llama.cpp always uses 0.1 ln(factor) + 1 = {default:.6g} for YaRN; "
                "unset scaling.attention_factor to run on backend=llama_cpp",
            )
        params["rope_scaling_type"] = llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN
        params["rope_freq_scale"] = 1.0 / s
        params["yarn_ext_factor"] = 1.0
        if scaling.beta_fast is not None:
            params["yarn_beta_fast"] = float(scaling.beta_fast)
        if scaling.beta_slow is not None:
            params["yarn_beta_slow"] = float(scaling.beta_slow)
        params["yarn_orig_ctx"] = (
            scaling.original_context_length or rope.trained_context_length
        )
    return params


def expected_rope(scaling: ScalingConfig, rope: RopeInfo) -> dict:
    """The base and scale llama.cpp should report once ``scaling`` is applied."""
    if scaling.method == "none":
        return {"freq_base": rope.rope_theta, "freq_scale": rope.freq_scale_train}
    if scaling.method == "ntk":
        return {
            "freq_base": ntk_rope_theta(
                rope.rope_theta, scaling.factor, rope.rope_dimensions
            ),
            "freq_scale": 1.0,
        }
    return {"freq_base": rope.rope_theta, "freq_scale": 1.0 / scaling.factor}


def describe(scaling: ScalingConfig, rope: RopeInfo | None = None) -> dict:
    """A flat summary of the method for records and tables."""
    summary = {"method": scaling.method, "factor": scaling.factor}
    if scaling.method == "yarn":
        summary["attention_factor"] = scaling.attention_factor or yarn_attention_factor(
            scaling.factor
        )
    if rope is not None:
        summary["original_context_length"] = (
            scaling.original_context_length or rope.trained_context_length
        )
    return summary
