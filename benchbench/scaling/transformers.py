"""Scaling methods as a transformers config's ``rope_parameters``.

transformers names the methods ``rope_type``: ``default`` (plain RoPE, and
NTK-aware scaling as a changed ``rope_theta``), ``linear``, ``dynamic``,
``yarn``, ``longrope`` and ``llama3``. Every value benchbench resolved is
written out, so that no transformers default decides a number silently.
"""

from benchbench.config import ScalingConfig
from benchbench.scaling import RopeInfo
from benchbench.scaling.reference import ntk_rope_theta

# benchbench method -> transformers rope_type
ROPE_TYPES = {
    "none": "default",
    "linear": "linear",
    "ntk": "default",
    "dynamic": "dynamic",
    "yarn": "yarn",
    "longrope": "longrope",
    "llama3": "llama3",
}


def rope_parameters(scaling: ScalingConfig, rope: RopeInfo) -> dict:
    """The ``rope_parameters`` dict that applies the resolved ``scaling``."""
    params = {"rope_type": ROPE_TYPES[scaling.method], "rope_theta": rope.rope_theta}
    method = scaling.method
    if method == "ntk":
        params["rope_theta"] = ntk_rope_theta(
            rope.rope_theta, scaling.factor, rope.rope_dimensions
        )
    if method in ("linear", "dynamic", "yarn", "longrope", "llama3"):
        params["factor"] = scaling.factor
    if method in ("yarn", "longrope", "llama3"):
        params["original_max_position_embeddings"] = scaling.original_context_length
    if method == "yarn":
        params.update(beta_fast=scaling.beta_fast, beta_slow=scaling.beta_slow)
        if scaling.mscale is not None:
            params.update(mscale=scaling.mscale, mscale_all_dim=scaling.mscale_all_dim)
    if method in ("yarn", "longrope") and scaling.attention_factor is not None:
        params["attention_factor"] = scaling.attention_factor
    if method == "longrope":
        params.update(
            short_factor=list(scaling.short_factor),
            long_factor=list(scaling.long_factor),
        )
    if method == "llama3":
        params.update(
            low_freq_factor=scaling.low_freq_factor,
            high_freq_factor=scaling.high_freq_factor,
        )
    return params


def max_position_embeddings(scaling: ScalingConfig, rope: RopeInfo) -> int:
    """The ``max_position_embeddings`` to give the model config.

    transformers' dynamic NTK reads the original context from this field (the
    other methods take ``original_max_position_embeddings``), so for it the
    field holds the original context; otherwise the model's trained context.
    """
    if scaling.method == "dynamic":
        return scaling.original_context_length
    return rope.trained_context_length


# transformers rope_parameters keys -> benchbench scaling keys
_KEYS = {
    "factor": "factor",
    "original_max_position_embeddings": "original_context_length",
    "beta_fast": "beta_fast",
    "beta_slow": "beta_slow",
    "attention_factor": "attention_factor",
    "mscale": "mscale",
    "mscale_all_dim": "mscale_all_dim",
    "short_factor": "short_factor",
    "long_factor": "long_factor",
    "low_freq_factor": "low_freq_factor",
    "high_freq_factor": "high_freq_factor",
}


def scaling_overrides(params: dict) -> list[str]:
    """The benchbench overrides that express a checkpoint's own ``rope_parameters``."""
    method = {v: k for k, v in ROPE_TYPES.items() if k not in ("none", "ntk")}.get(
        params.get("rope_type", "default"), params.get("rope_type")
    )
    overrides = [f"scaling={method}"]
    for key, name in _KEYS.items():
        value = params.get(key)
        if value is None:
            continue
        if isinstance(value, list):
            value = "[" + ",".join(f"{v:g}" for v in value) + "]"
        overrides.append(f"scaling.{name}={value}")
    return overrides
