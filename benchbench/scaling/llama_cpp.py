"""Scaling methods as llama.cpp context parameters, and what llama.cpp then applies.

- ``linear``: ``rope_freq_scale = 1 / s``, scaling type LINEAR.
- ``ntk``: llama.cpp has no flag for it; a changed ``rope_freq_base`` with
  scaling type NONE is the exact equivalent.
- ``yarn``: scaling type YARN, ``rope_freq_scale = 1 / s``,
  ``yarn_ext_factor = 1``, ``yarn_orig_ctx``, betas where the config sets them.
- ``dynamic``, ``longrope``, ``llama3``: llama.cpp fixes a context's base and
  scale when the context is created and reads per-pair factors only from
  tensors inside the GGUF, so none of them can be asked for at run time; they
  are refused and run on ``backend=transformers``.

Any parameter the config leaves unset is passed as llama.cpp's own "take it
from the model file" value, never as the Python wrapper's default
(``Llama()`` defaults ``yarn_attn_factor=1``, ``yarn_beta_fast=32``,
``yarn_beta_slow=1``, which would override values stored in a model file).
"""

import math

import llama_cpp
import numpy as np

from benchbench.config import ScalingConfig
from benchbench.errors import ConfigError
from benchbench.scaling import RopeInfo, resolve
from benchbench.scaling.reference import ntk_rope_theta, yarn_attention_factor

SUPPORTED = ("none", "linear", "ntk", "yarn")


def llama_cpp_params(scaling: ScalingConfig, rope: RopeInfo) -> dict:
    """Keyword arguments for ``llama_cpp.Llama`` that apply ``scaling``.

    Values of -1 or 0 are llama.cpp's markers for "as stored in the GGUF".
    """
    if scaling.method not in SUPPORTED:
        raise ConfigError(
            "scaling.method",
            f"llama.cpp cannot apply '{scaling.method}' at run time (it has no flag for it); "
            f"run it with backend=transformers, or pick one of {', '.join(SUPPORTED)}",
        )
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
        _refuse_custom_attention(scaling)
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


def _refuse_custom_attention(scaling: ScalingConfig) -> None:
    # llama.cpp recomputes YaRN's magnitude scale from the factor and ignores
    # any value passed in, so a custom one cannot be honoured
    default = yarn_attention_factor(scaling.factor)
    custom = scaling.attention_factor is not None and not math.isclose(
        scaling.attention_factor, default, rel_tol=1e-6
    )
    if custom or scaling.mscale is not None:
        key = "scaling.attention_factor" if custom else "scaling.mscale"
        raise ConfigError(
            key,
            f"llama.cpp always uses 0.1 ln(factor) + 1 = {default:.6g} for YaRN; "
            f"unset {key} to run on backend=llama_cpp, or use backend=transformers",
        )


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


def applied_rope(
    scaling: ScalingConfig, rope: RopeInfo, freq_base: float, freq_scale: float
) -> dict:
    """The frequencies llama.cpp rotates with, from the base and scale its context reports.

    This follows ggml's own rope kernel (``rope_yarn`` in ggml-cpu): pair i
    turns by ``freq_scale * freq_base^(-2i/d)``; with YaRN, the pairs below the
    ramp keep the unscaled value, and cos and sin are multiplied by
    ``1 + 0.1 ln(1 / freq_scale)``. It shares no code with ``reference.py``.
    """
    d = rope.rope_dimensions
    pairs = np.arange(d // 2)
    extrapolated = freq_base ** (-2.0 * pairs / d)
    if rope.rope_freqs is not None:
        # ggml divides each pair by the file's factor before any scaling
        extrapolated = extrapolated / np.asarray(rope.rope_freqs)
    interpolated = freq_scale * extrapolated
    if scaling.method != "yarn":
        return {"inv_freq": interpolated.tolist(), "attention_factor": 1.0}

    resolved = resolve(scaling, rope)

    def corr_dim(n_rot: float) -> float:
        original = resolved.original_context_length
        return (
            d * math.log(original / (n_rot * 2 * math.pi)) / (2 * math.log(freq_base))
        )

    start = max(0.0, math.floor(corr_dim(resolved.beta_fast)))
    end = min(d - 1.0, math.ceil(corr_dim(resolved.beta_slow)))
    ramp = 1.0 - np.minimum(
        1.0, np.maximum(0.0, (pairs - start) / max(0.001, end - start))
    )
    # yarn_ext_factor is 1, so the ramp mixes in full
    theta = interpolated * (1.0 - ramp) + extrapolated * ramp
    return {
        "inv_freq": theta.tolist(),
        "attention_factor": 1.0 + 0.1 * math.log(1.0 / freq_scale),
    }
