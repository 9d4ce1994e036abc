"""A GGUF that carries per-pair RoPE factors (rope_freqs, as Llama 3.1 files do).

llama.cpp divides each pair's frequency by the file's factor; benchbench must
see that, check it, and refuse what it cannot honour. The files here are
copies of the embedded SmolLM2 with a rope_freqs tensor added.
"""

import gguf
import numpy as np
import pytest

from benchbench.config import BackendConfig, ScalingConfig
from benchbench.errors import ConfigError
from benchbench.gguf_tensors import read_f32_tensor
from benchbench.runner import check_scaling
from benchbench.scaling.reference import plain_inv_freq
from tests.conftest import load_backend
from tests.gguf_copy import copy_with_tensors

HALF = [1.0] * 16 + [2.0] * 16
TEXT = "The quick brown fox jumps over the lazy dog. " * 12


@pytest.fixture(scope="module")
def files(smollm2_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    return {
        name: copy_with_tensors(
            smollm2_path, folder / f"{name}.gguf", {"rope_freqs.weight": factors}
        )
        for name, factors in (("half", HALF), ("twos", [2.0] * 32))
    }


def test_reads_the_tensor_as_the_gguf_library_does(files, smollm2_path):
    reader = gguf.GGUFReader(files["half"])
    for name in ("rope_freqs.weight", "output_norm.weight"):
        (tensor,) = [t for t in reader.tensors if t.name == name]
        np.testing.assert_array_equal(
            read_f32_tensor(files["half"], name), np.asarray(tensor.data).ravel()
        )
    assert read_f32_tensor(smollm2_path, "rope_freqs.weight") is None


def test_llama_cpp_applies_and_reports_the_file_factors(files, smollm2_path):
    backend = load_backend(files["half"], n_ctx=256)
    try:
        rope = backend.effective_rope()
    finally:
        backend.close()
    np.testing.assert_allclose(
        rope["inv_freq"], plain_inv_freq(100000.0, 64) / np.array(HALF), rtol=1e-6
    )


def test_factors_of_two_rotate_like_linear_interpolation_by_two(files, smollm2_path):
    # dividing every pair by 2 is position interpolation by 2: an independent
    # check that llama.cpp really divides by the file's factors
    twos = load_backend(files["twos"], n_ctx=256)
    linear = load_backend(
        smollm2_path, n_ctx=256, scaling=ScalingConfig(method="linear", factor=2.0)
    )
    plain = load_backend(smollm2_path, n_ctx=256)
    try:
        tokens = plain.tokenize(TEXT)
        a, b, c = twos.logprobs(tokens), linear.logprobs(tokens), plain.logprobs(tokens)
    finally:
        for backend in (twos, linear, plain):
            backend.close()
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert np.abs(a - c).max() > 0.1


def test_no_method_is_stacked_on_the_file_factors(files):
    from benchbench.models import read_model_info

    rope, _ = read_model_info(files["half"])
    assert rope.rope_freqs == tuple(HALF)

    class Run:
        backend = BackendConfig()
        scaling = ScalingConfig(method="yarn", factor=2.0)

    with pytest.raises(
        ConfigError, match=r"scaling.method: the model file already rescales"
    ):
        check_scaling(Run, rope)

    # transformers' GGUF loader would drop the tensor and rotate plainly
    Run.scaling = ScalingConfig()
    Run.backend = BackendConfig(name="transformers")
    with pytest.raises(ConfigError, match=r"backend: the GGUF scales its own RoPE"):
        check_scaling(Run, rope)
