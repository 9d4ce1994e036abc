"""benchbench's own reference of every scaling method's RoPE frequencies.

Written from the papers' formulas in numpy float64, independently of any
backend, so that what a backend applies can be checked against it. Pair i of
d rotary dimensions turns at ``inv_freq[i] = theta^(-2i / d)`` radians per
position (wavelength 2 pi / inv_freq[i] positions); a scaling method changes
these and may multiply cos and sin by an attention factor.

``scaling`` is always a resolved config (``benchbench.scaling.resolve``).
``seq_len`` is the length of the whole sequence, read only by the
length-dependent methods (dynamic NTK, LongRoPE).
"""

import math

import numpy as np

from benchbench.config import ScalingConfig
from benchbench.scaling import RopeInfo


def plain_inv_freq(rope_theta: float, rope_dimensions: int) -> np.ndarray:
    """Unscaled RoPE (Su et al. 2021): theta^(-2i/d) for each of the d/2 pairs."""
    return rope_theta ** (-np.arange(0, rope_dimensions, 2) / rope_dimensions)


def ntk_rope_theta(rope_theta: float, factor: float, rope_dimensions: int) -> float:
    """NTK-aware base: theta * s^(d / (d - 2)), which divides the lowest frequency by s."""
    return rope_theta * factor ** (rope_dimensions / (rope_dimensions - 2))


def dynamic_rope_theta(
    rope_theta: float,
    factor: float,
    rope_dimensions: int,
    original_context_length: int,
    seq_len: int,
) -> float:
    """Dynamic NTK base for a sequence of ``seq_len`` tokens.

    Plain theta up to the original context; past it, the NTK base for the
    ratio s L / L0 - (s - 1), which grows from 1 at L = L0 to s at L = s L0.
    """
    if seq_len <= original_context_length:
        return rope_theta
    ratio = factor * seq_len / original_context_length - (factor - 1)
    return rope_theta * ratio ** (rope_dimensions / (rope_dimensions - 2))


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature sqrt(1/t) = 0.1 * mscale * ln(s) + 1 (1 for s <= 1)."""
    return 0.1 * mscale * math.log(factor) + 1.0 if factor > 1.0 else 1.0


def yarn_attention_factor(factor: float) -> float:
    """YaRN's default attention factor 0.1 ln(s) + 1 (Peng et al. 2023, eq. 22)."""
    return yarn_mscale(factor)


def yarn_ramp_bounds(
    rope_theta: float,
    rope_dimensions: int,
    original_context_length: int,
    beta_fast,
    beta_slow,
) -> tuple[float, float]:
    """The pair indices where YaRN's ramp starts and ends.

    Pair i makes r_i = L0 / wavelength_i rotations over the original context.
    Pairs that turn more than beta_fast times are kept (extrapolated), pairs
    that turn fewer than beta_slow times are interpolated. Solving
    r_i = beta for i gives d ln(L0 / (2 pi beta)) / (2 ln theta); the bounds are
    rounded outwards to whole pairs and clipped to [0, d - 1], as in the
    authors' released code, which both transformers and llama.cpp follow.
    """

    def pair_with_rotations(beta: float) -> float:
        return (
            rope_dimensions
            * math.log(original_context_length / (2 * math.pi * beta))
            / (2 * math.log(rope_theta))
        )

    low = max(math.floor(pair_with_rotations(beta_fast)), 0)
    high = min(math.ceil(pair_with_rotations(beta_slow)), rope_dimensions - 1)
    return low, high


def yarn_inv_freq(
    rope_theta: float,
    rope_dimensions: int,
    factor: float,
    original_context_length: int,
    beta_fast: float,
    beta_slow: float,
) -> np.ndarray:
    """YaRN's "NTK-by-parts" frequencies (Peng et al. 2023, section 3.2).

    Each pair is a blend (1 - g) * inv_freq / s + g * inv_freq, where g is 1
    for pairs below the ramp (fast, kept), 0 above it (slow, interpolated) and
    linear in the pair index in between.
    """
    base = plain_inv_freq(rope_theta, rope_dimensions)
    low, high = yarn_ramp_bounds(
        rope_theta, rope_dimensions, original_context_length, beta_fast, beta_slow
    )
    # a zero-width ramp is widened slightly, so that the division is defined
    width = max(high - low, 1e-3)
    interpolated_share = np.clip((np.arange(len(base)) - low) / width, 0.0, 1.0)
    kept = 1.0 - interpolated_share
    return kept * base + interpolated_share * base / factor


def llama3_inv_freq(
    rope_theta: float,
    rope_dimensions: int,
    factor: float,
    original_context_length: int,
    low_freq_factor: float,
    high_freq_factor: float,
) -> np.ndarray:
    """Llama 3.1's frequency-band scaling (Meta's reference implementation).

    Wavelengths shorter than L0 / high_freq_factor are kept, longer than
    L0 / low_freq_factor are divided by s; in between, the blend weight
    (L0 / wavelength - low) / (high - low) moves from interpolated to kept.
    """
    base = plain_inv_freq(rope_theta, rope_dimensions)
    wavelength = 2 * math.pi / base
    short_edge = original_context_length / high_freq_factor
    long_edge = original_context_length / low_freq_factor
    kept = (original_context_length / wavelength - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    blended = (1.0 - kept) * base / factor + kept * base
    return np.where(
        wavelength < short_edge,
        base,
        np.where(wavelength > long_edge, base / factor, blended),
    )


def rope_theta(
    scaling: ScalingConfig, rope: RopeInfo, seq_len: int | None = None
) -> float:
    """The RoPE base the method rotates with (only NTK and dynamic NTK change it)."""
    if scaling.method == "ntk":
        return ntk_rope_theta(rope.rope_theta, scaling.factor, rope.rope_dimensions)
    if scaling.method == "dynamic":
        return dynamic_rope_theta(
            rope.rope_theta,
            scaling.factor,
            rope.rope_dimensions,
            scaling.original_context_length,
            seq_len or scaling.original_context_length,
        )
    return rope.rope_theta


def inv_freq(
    scaling: ScalingConfig, rope: RopeInfo, seq_len: int | None = None
) -> np.ndarray:
    """The d/2 inverse frequencies of ``scaling`` for a sequence of ``seq_len`` tokens."""
    method, s, d = scaling.method, scaling.factor, rope.rope_dimensions
    original = scaling.original_context_length
    if method == "none":
        # as the file stores it: its linear scale and per-pair divisors, if any
        stored = plain_inv_freq(rope.rope_theta, d) * rope.freq_scale_train
        if rope.rope_freqs is not None:
            stored = stored / np.asarray(rope.rope_freqs)
        return stored
    if method == "linear":
        return plain_inv_freq(rope.rope_theta, d) / s
    if method in ("ntk", "dynamic"):
        return plain_inv_freq(rope_theta(scaling, rope, seq_len), d)
    if method == "yarn":
        return yarn_inv_freq(
            rope.rope_theta, d, s, original, scaling.beta_fast, scaling.beta_slow
        )
    if method == "longrope":
        long = seq_len is not None and seq_len > original
        factors = np.asarray(scaling.long_factor if long else scaling.short_factor)
        return plain_inv_freq(rope.rope_theta, d) / factors
    if method == "llama3":
        return llama3_inv_freq(
            rope.rope_theta,
            d,
            s,
            original,
            scaling.low_freq_factor,
            scaling.high_freq_factor,
        )
    raise ValueError(f"unknown scaling method {method!r}")


def attention_factor(scaling: ScalingConfig, rope: RopeInfo) -> float:
    """The factor cos and sin are multiplied by (so q.k by its square)."""
    if scaling.attention_factor is not None:
        return scaling.attention_factor
    if scaling.method == "yarn":
        if scaling.mscale is not None:
            return yarn_mscale(scaling.factor, scaling.mscale) / yarn_mscale(
                scaling.factor, scaling.mscale_all_dim
            )
        return yarn_attention_factor(scaling.factor)
    if scaling.method == "longrope" and scaling.factor > 1.0:
        # LongRoPE / Phi-3: sqrt(1 + ln(s) / ln(L0))
        return math.sqrt(
            1 + math.log(scaling.factor) / math.log(scaling.original_context_length)
        )
    return 1.0


def effective(
    scaling: ScalingConfig, rope: RopeInfo, seq_len: int | None = None
) -> dict:
    """Everything that fixes the rotations, as plain JSON-ready values."""
    return {
        "method": scaling.method,
        "factor": scaling.factor,
        "rope_theta": rope_theta(scaling, rope, seq_len),
        "original_context_length": scaling.original_context_length,
        "seq_len": seq_len,
        "attention_factor": attention_factor(scaling, rope),
        "inv_freq": inv_freq(scaling, rope, seq_len).tolist(),
    }
