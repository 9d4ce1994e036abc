"""Scaling methods map onto llama.cpp's context parameters, and llama.cpp applies them."""

import math

import llama_cpp
import numpy as np
import pytest

from benchbench.config import ScalingConfig
from benchbench.errors import ConfigError
from benchbench.scaling import RopeInfo
from benchbench.scaling.llama_cpp import llama_cpp_params
from benchbench.scaling.reference import ntk_rope_theta, yarn_attention_factor
from tests.conftest import load_backend

SMOL = RopeInfo(rope_theta=100000.0, rope_dimensions=64, trained_context_length=8192)

# llama.cpp's own "take it from the GGUF" markers (llama_context_default_params);
# the Python wrapper's defaults (yarn_attn_factor=1, betas 32/1) would override
# values stored in the model file
FROM_MODEL = {
    "rope_scaling_type": -1,
    "rope_freq_base": 0.0,
    "rope_freq_scale": 0.0,
    "yarn_ext_factor": -1.0,
    "yarn_attn_factor": -1.0,
    "yarn_beta_fast": -1.0,
    "yarn_beta_slow": -1.0,
    "yarn_orig_ctx": 0,
}


def test_none_passes_only_from_model_markers():
    assert llama_cpp_params(ScalingConfig(), SMOL) == FROM_MODEL


def test_from_model_markers_are_llama_cpp_defaults():
    defaults = llama_cpp.llama_context_default_params()
    for key, value in FROM_MODEL.items():
        assert getattr(defaults, key) == value, key


def test_linear_is_position_interpolation():
    params = llama_cpp_params(ScalingConfig(method="linear", factor=4.0), SMOL)
    assert params["rope_scaling_type"] == llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR
    assert params["rope_freq_scale"] == 0.25
    assert params["rope_freq_base"] == 0.0  # base stays as stored


def test_ntk_base_divides_lowest_frequency_by_factor():
    s, d, theta = 4.0, 64, 100000.0
    new_theta = ntk_rope_theta(theta, s, d)
    # frequency of pair i is theta^(-2i/d); NTK-aware scaling keeps i = 0 and
    # divides the lowest one, i = d/2 - 1, by exactly s
    lowest = lambda base: base ** (-(d - 2) / d)  # noqa: E731
    assert math.isclose(lowest(new_theta), lowest(theta) / s, rel_tol=1e-12)
    assert math.isclose(new_theta, 100000.0 * 4 ** (64 / 62), rel_tol=1e-12)
    params = llama_cpp_params(ScalingConfig(method="ntk", factor=s), SMOL)
    assert params["rope_scaling_type"] == llama_cpp.LLAMA_ROPE_SCALING_TYPE_NONE
    assert params["rope_freq_base"] == pytest.approx(new_theta)


def test_yarn_parameters():
    params = llama_cpp_params(ScalingConfig(method="yarn", factor=2.0), SMOL)
    assert params["rope_scaling_type"] == llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN
    assert params["rope_freq_scale"] == 0.5
    assert params["yarn_ext_factor"] == 1.0
    assert params["yarn_orig_ctx"] == 8192
    # unset betas are read from the model file, not the wrapper's 32 / 1
    assert params["yarn_beta_fast"] == -1.0 and params["yarn_beta_slow"] == -1.0
    custom = llama_cpp_params(
        ScalingConfig(
            method="yarn",
            factor=2.0,
            beta_fast=16,
            beta_slow=2,
            original_context_length=4096,
        ),
        SMOL,
    )
    assert (
        custom["yarn_beta_fast"],
        custom["yarn_beta_slow"],
        custom["yarn_orig_ctx"],
    ) == (16.0, 2.0, 4096)


def test_yarn_custom_attention_factor_is_refused_on_llama_cpp():
    with pytest.raises(ConfigError, match="scaling.attention_factor"):
        llama_cpp_params(
            ScalingConfig(method="yarn", factor=2.0, attention_factor=1.5), SMOL
        )
    # the paper's value is what llama.cpp applies, so asking for it is fine
    llama_cpp_params(
        ScalingConfig(
            method="yarn", factor=2.0, attention_factor=yarn_attention_factor(2.0)
        ),
        SMOL,
    )


@pytest.mark.parametrize(
    ("scaling", "freq_base", "freq_scale"),
    [
        (ScalingConfig(), 100000.0, 1.0),
        (ScalingConfig(method="linear", factor=2.0), 100000.0, 0.5),
        (ScalingConfig(method="ntk", factor=2.0), 100000.0 * 2 ** (64 / 62), 1.0),
        (ScalingConfig(method="yarn", factor=4.0), 100000.0, 0.25),
    ],
)
def test_llama_cpp_reports_the_applied_scaling(
    smollm2_path, scaling, freq_base, freq_scale
):
    backend = load_backend(smollm2_path, n_ctx=256, scaling=scaling)
    try:
        effective = backend.provenance()["rope_effective"]
    finally:
        backend.close()
    assert effective["freq_base"] == pytest.approx(freq_base, abs=0.05)
    assert effective["freq_scale"] == pytest.approx(freq_scale, rel=1e-6)


def test_scaling_changes_the_model_output(smollm2, smollm2_path):
    tokens = smollm2.tokenize("The quick brown fox jumps over the lazy dog. " * 8)
    plain = smollm2.logprobs(tokens)
    scaled = load_backend(
        smollm2_path, n_ctx=1024, scaling=ScalingConfig(method="linear", factor=2.0)
    )
    try:
        interpolated = scaled.logprobs(tokens)
    finally:
        scaled.close()
    assert np.abs(plain - interpolated).max() > 0.1
