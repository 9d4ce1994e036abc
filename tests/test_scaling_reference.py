"""benchbench's reference RoPE frequencies against the papers' numbers and identities."""

import math

import numpy as np
import pytest

from benchbench.config import ScalingConfig
from benchbench.errors import ConfigError
from benchbench.scaling import RopeInfo, is_length_dependent, resolve
from benchbench.scaling.reference import (
    attention_factor,
    dynamic_rope_theta,
    inv_freq,
    plain_inv_freq,
    yarn_ramp_bounds,
)

SMOL = RopeInfo(rope_theta=100000.0, rope_dimensions=64, trained_context_length=8192)
LLAMA31 = RopeInfo(
    rope_theta=500000.0, rope_dimensions=128, trained_context_length=131072
)
PAIRS = np.arange(32)


def freqs(rope=SMOL, seq_len=None, **scaling):
    return inv_freq(resolve(ScalingConfig(**scaling), rope), rope, seq_len)


def test_plain_rope_pair_frequencies():
    # pair i turns theta^(-2i/d) radians per position: 1 for i = 0
    base = plain_inv_freq(100000.0, 64)
    assert base[0] == 1.0
    assert base[1] == pytest.approx(100000.0 ** (-2 / 64))
    assert base[-1] == pytest.approx(100000.0 ** (-62 / 64))
    assert np.array_equal(freqs(method="none"), base)


@pytest.mark.parametrize("method", ["linear", "ntk", "yarn", "llama3"])
def test_factor_one_is_plain_rope(method):
    plain = freqs(method="none")
    assert np.allclose(freqs(method=method, factor=1.0, seq_len=20000), plain)


def test_dynamic_ntk_at_factor_one_still_follows_the_length():
    # the ratio s L / L0 - (s - 1) is L / L0 at s = 1: plain up to L0, then the
    # base of NTK-aware scaling by L / L0 (so factor 1 is not plain RoPE past L0)
    assert np.array_equal(
        freqs(method="dynamic", factor=1.0, seq_len=8192), freqs(method="none")
    )
    theta = dynamic_rope_theta(100000.0, 1.0, 64, 8192, 20000)
    assert theta == pytest.approx(100000.0 * (20000 / 8192) ** (64 / 62), rel=1e-12)


def test_linear_at_position_p_is_plain_rope_at_p_over_s():
    s = 4.0
    for p in (0, 1, 7, 1000, 32768):
        angles_scaled = p * freqs(method="linear", factor=s)
        angles_plain = (p / s) * freqs(method="none")
        assert np.allclose(angles_scaled, angles_plain, rtol=1e-12)


def test_ntk_keeps_the_fastest_pair_and_slows_the_slowest_by_s():
    s = 4.0
    scaled, plain = freqs(method="ntk", factor=s), freqs(method="none")
    assert scaled[0] == plain[0] == 1.0
    assert scaled[-1] == pytest.approx(plain[-1] / s, rel=1e-12)
    assert np.all(scaled[1:] < plain[1:])


def test_dynamic_ntk_is_plain_up_to_the_original_context():
    plain = freqs(method="none")
    for seq_len in (1, 4096, 8192):
        assert np.array_equal(
            freqs(method="dynamic", factor=2.0, seq_len=seq_len), plain
        )


def test_dynamic_ntk_grows_its_base_past_the_original_context():
    # at L = 2 L0 with s = 2 the ratio is s L / L0 - (s - 1) = 3
    theta = dynamic_rope_theta(100000.0, 2.0, 64, 8192, 16384)
    assert theta == pytest.approx(100000.0 * 3 ** (64 / 62), rel=1e-12)
    bases = [
        dynamic_rope_theta(100000.0, 2.0, 64, 8192, n)
        for n in (8193, 12288, 16384, 32768)
    ]
    assert bases == sorted(bases) and bases[0] > 100000.0
    slowest = freqs(method="dynamic", factor=2.0, seq_len=16384)[-1]
    assert slowest == pytest.approx(plain_inv_freq(theta, 64)[-1])
    assert is_length_dependent("dynamic") and not is_length_dependent("ntk")


def test_yarn_attention_factor_golden_values():
    # sqrt(1/t) = 0.1 ln(s) + 1 (Peng et al. 2023)
    def yarn(**kw):
        return attention_factor(resolve(ScalingConfig(method="yarn", **kw), SMOL), SMOL)

    assert yarn(factor=2.0) == pytest.approx(1.0693147, abs=1e-7)
    assert yarn(factor=4.0) == pytest.approx(1.1386294, abs=1e-7)
    assert yarn(factor=1.0) == 1.0
    assert yarn(factor=2.0, attention_factor=1.25) == 1.25
    # DeepSeek's form: (0.1 * 1 * ln 4 + 1) / (0.1 * 0.5 * ln 4 + 1)
    assert yarn(factor=4.0, mscale=1.0, mscale_all_dim=0.5) == pytest.approx(
        1.1386294 / 1.0693147, rel=1e-7
    )


def test_yarn_ramp_bounds_for_smollm2():
    # pair i makes 8192 / (2 pi 1e5^(2i/64)) turns over the original context:
    # 35.7 at i = 10 (more than beta_fast = 32: kept), 25 at i = 11, and
    # 1.07 at i = 19, 0.75 at i = 20 (fewer than beta_slow = 1: interpolated)
    assert yarn_ramp_bounds(100000.0, 64, 8192, 32.0, 1.0) == (10, 20)
    s = 4.0
    scaled, plain = freqs(method="yarn", factor=s), freqs(method="none")
    assert np.array_equal(scaled[:11], plain[:11])
    assert np.allclose(scaled[20:], plain[20:] / s, rtol=1e-12)
    between = scaled[11:20] / plain[11:20]
    assert np.all((between < 1) & (between > 1 / s))
    assert np.all(np.diff(between) < 0)


def test_yarn_betas_move_the_ramp():
    wide = freqs(method="yarn", factor=4.0, beta_fast=64.0, beta_slow=0.5)
    default = freqs(method="yarn", factor=4.0)
    assert not np.allclose(wide, default)


def test_llama3_scaling_of_llama_31():
    # Llama 3.1: theta 500000, 128 dimensions, factor 8, band edges 1 and 4 on
    # an original context of 8192. Wavelength 2 pi 500000^(2i/128) is below
    # 8192 / 4 = 2048 up to pair 28 and above 8192 / 1 for pair 35 on.
    scaling = dict(method="llama3", factor=8.0, original_context_length=8192)
    scaled, plain = freqs(LLAMA31, **scaling), plain_inv_freq(500000.0, 128)
    wavelength = 2 * math.pi / plain
    assert wavelength[28] < 2048 < wavelength[29]
    assert wavelength[34] < 8192 < wavelength[35]
    assert np.array_equal(scaled[:29], plain[:29])
    assert np.allclose(scaled[35:], plain[35:] / 8, rtol=1e-12)
    ratio = scaled[29:35] / plain[29:35]
    assert np.all((ratio < 1) & (ratio > 1 / 8)) and np.all(np.diff(ratio) < 0)


def test_longrope_switches_lists_at_the_original_context():
    short = [1.0] * 32
    long = [2 ** (i / 31) for i in range(32)]
    scaling = dict(method="longrope", factor=2.0, short_factor=short, long_factor=long)
    plain = freqs(method="none")
    assert np.allclose(freqs(seq_len=8192, **scaling), plain)
    assert np.allclose(freqs(seq_len=8193, **scaling), plain / np.array(long))
    assert is_length_dependent("longrope")
    # sqrt(1 + ln(s) / ln(L0)) at s = 2, L0 = 8192
    resolved = resolve(ScalingConfig(**scaling), SMOL)
    assert attention_factor(resolved, SMOL) == pytest.approx(
        math.sqrt(1 + math.log(2) / math.log(8192))
    )


def test_longrope_lists_must_have_one_factor_per_pair():
    scaling = ScalingConfig(
        method="longrope", factor=2.0, short_factor=[1.0] * 48, long_factor=[1.0] * 48
    )
    with pytest.raises(
        ConfigError, match=r"scaling.short_factor: has 48 numbers .* 32 pairs"
    ):
        resolve(scaling, SMOL)


def test_original_context_longer_than_the_model_is_refused():
    with pytest.raises(ConfigError, match="scaling.original_context_length"):
        resolve(
            ScalingConfig(method="yarn", factor=2.0, original_context_length=16384),
            SMOL,
        )


def test_model_file_betas_are_the_yarn_defaults():
    rope = RopeInfo(100000.0, 64, 8192, yarn_beta_fast=16.0, yarn_beta_slow=2.0)
    resolved = resolve(ScalingConfig(method="yarn", factor=2.0), rope)
    assert (resolved.beta_fast, resolved.beta_slow) == (16.0, 2.0)
    # the config still wins over the file
    resolved = resolve(ScalingConfig(method="yarn", factor=2.0, beta_fast=40.0), rope)
    assert resolved.beta_fast == 40.0
