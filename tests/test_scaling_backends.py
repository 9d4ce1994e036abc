"""Each backend's translation of a scaling method rotates as the reference says.

transformers: the config benchbench writes is turned into frequencies by
transformers' own rotary embedding (no weights needed). llama.cpp: the base and
scale a context would report are turned into frequencies by a copy of ggml's
rope rule. Both are compared with ``benchbench.scaling.reference``.
"""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from benchbench.config import ScalingConfig
from benchbench.errors import ConfigError
from benchbench.scaling import RopeInfo, is_length_dependent, reference, resolve
from benchbench.scaling.llama_cpp import applied_rope, expected_rope, llama_cpp_params
from benchbench.scaling.transformers import max_position_embeddings, rope_parameters

SMOL = RopeInfo(rope_theta=100000.0, rope_dimensions=64, trained_context_length=8192)
LONG = [2 ** (i / 31) for i in range(32)]

METHODS = [
    ScalingConfig(),
    ScalingConfig(method="linear", factor=4.0),
    ScalingConfig(method="ntk", factor=4.0),
    ScalingConfig(method="dynamic", factor=2.0),
    ScalingConfig(method="dynamic", factor=8.0, original_context_length=4096),
    ScalingConfig(method="yarn", factor=2.0),
    ScalingConfig(method="yarn", factor=8.0, beta_fast=16.0, beta_slow=2.0),
    ScalingConfig(method="yarn", factor=4.0, attention_factor=1.3),
    ScalingConfig(method="yarn", factor=40.0, mscale=1.0, mscale_all_dim=0.5),
    ScalingConfig(
        method="longrope", factor=2.0, short_factor=[1.0] * 32, long_factor=LONG
    ),
    ScalingConfig(method="llama3", factor=8.0),
    ScalingConfig(
        method="llama3", factor=4.0, low_freq_factor=2.0, high_freq_factor=8.0
    ),
]


def transformers_rotary(scaling: ScalingConfig, seq_len: int):
    """transformers' own rotary embedding for the config benchbench writes, after one pass of ``seq_len``."""
    resolved = resolve(scaling, SMOL)
    config = LlamaConfig(
        hidden_size=576,
        num_attention_heads=9,
        head_dim=64,
        max_position_embeddings=max_position_embeddings(resolved, SMOL),
        rope_parameters=rope_parameters(resolved, SMOL),
    )
    rotary = LlamaRotaryEmbedding(config)
    # a pass over seq_len positions lets length-dependent methods update
    rotary(torch.zeros(1, 1, 64), torch.arange(seq_len)[None, :])
    return rotary.inv_freq.double().numpy(), float(rotary.attention_scaling)


@pytest.mark.parametrize("scaling", METHODS, ids=lambda s: f"{s.method}-x{s.factor:g}")
@pytest.mark.parametrize("seq_len", [2048, 8192, 16384])
def test_transformers_rotates_as_the_reference(scaling, seq_len):
    resolved = resolve(scaling, SMOL)
    got, attention = transformers_rotary(scaling, seq_len)
    want = reference.inv_freq(resolved, SMOL, seq_len)
    assert np.allclose(got, want, rtol=2e-6, atol=0)
    assert attention == pytest.approx(
        reference.attention_factor(resolved, SMOL), rel=1e-6
    )


def test_length_dependent_methods_differ_below_and_above_the_original_context():
    for scaling in METHODS:
        if not is_length_dependent(scaling.method):
            continue
        short, _ = transformers_rotary(scaling, 2048)
        long, _ = transformers_rotary(scaling, 16384)
        assert not np.allclose(short, long), scaling.method


@pytest.mark.parametrize(
    "scaling",
    [
        m
        for m in METHODS
        if m.method in ("none", "linear", "ntk", "yarn")
        and m.attention_factor is None
        and m.mscale is None
    ],
    ids=lambda s: f"{s.method}-x{s.factor:g}",
)
def test_llama_cpp_rotates_as_the_reference(scaling):
    # what the context would report when the parameters are applied as asked
    reported = expected_rope(scaling, SMOL)
    got = applied_rope(scaling, SMOL, reported["freq_base"], reported["freq_scale"])
    resolved = resolve(scaling, SMOL)
    assert np.allclose(got["inv_freq"], reference.inv_freq(resolved, SMOL), rtol=1e-12)
    assert got["attention_factor"] == pytest.approx(
        reference.attention_factor(resolved, SMOL), rel=1e-12
    )


def test_llama_cpp_frequencies_expose_an_ignored_scale():
    # had llama.cpp kept the file's scale, the frequencies would be plain RoPE
    scaling = ScalingConfig(method="linear", factor=2.0)
    got = applied_rope(scaling, SMOL, 100000.0, 1.0)["inv_freq"]
    assert not np.allclose(got, reference.inv_freq(resolve(scaling, SMOL), SMOL))


@pytest.mark.parametrize("method", ["dynamic", "longrope", "llama3"])
def test_llama_cpp_refuses_what_it_cannot_express(method):
    extra = (
        {"short_factor": [1.0] * 32, "long_factor": LONG}
        if method == "longrope"
        else {}
    )
    with pytest.raises(ConfigError, match=r"scaling.method: .*backend=transformers"):
        llama_cpp_params(ScalingConfig(method=method, factor=2.0, **extra), SMOL)


def test_llama_cpp_refuses_a_yarn_mscale():
    with pytest.raises(ConfigError, match="scaling.mscale"):
        llama_cpp_params(
            ScalingConfig(method="yarn", factor=4.0, mscale=1.0, mscale_all_dim=0.5),
            SMOL,
        )


def test_transformers_memory_estimate_by_hand():
    from benchbench.backends.transformers import RUNTIME_BYTES, memory_estimate
    from benchbench.config import BackendConfig

    shape = {"layers": 30, "heads": 9, "heads_kv": 3, "head_dim": 64, "n_vocab": 49152}
    parts = memory_estimate(
        shape, 8192, BackendConfig(name="transformers"), 134_515_008
    )
    assert parts["weights"] == 134_515_008 * 4
    # keys and values: 2 x 30 layers x 3 heads x 64 x 8192 positions x 4 bytes
    assert parts["kv_cache"] == 2 * 30 * 3 * 64 * 8192 * 4
    assert parts["logits"] == 512 * 49152 * 16
    assert parts["attention_scores"] == 512 * 8192 * 9 * 4
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    half = memory_estimate(
        shape, 8192, BackendConfig(name="transformers", dtype="bfloat16"), 134_515_008
    )
    assert half["weights"] == parts["weights"] // 2
    assert half["runtime"] == RUNTIME_BYTES
