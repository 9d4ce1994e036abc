"""Both backends on a CUDA GPU, where one is present; skipped elsewhere.

llama.cpp needs a CUDA build of llama-cpp-python
(CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CUDA=on" bash scripts/setup.sh);
transformers needs torch to see the GPU.
"""

from pydoc_data import topics

import llama_cpp
import numpy as np
import pytest
import torch

from benchbench.parity import compare_scores
from tests.conftest import load_transformers

TEXT = topics.topics["assert"] + topics.topics["assignment"]

needs_cuda_torch = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="torch sees no CUDA GPU"
)
needs_cuda_llama = pytest.mark.skipif(
    not llama_cpp.llama_supports_gpu_offload(),
    reason="llama-cpp-python was built without GPU offload",
)


@needs_cuda_llama
def test_llama_cpp_on_the_gpu_scores_as_on_the_cpu(smollm2, smollm2_path):
    from benchbench.backends.llama_cpp import LlamaCppBackend, read_rope_info
    from benchbench.config import BackendConfig, ScalingConfig

    rope, _ = read_rope_info(smollm2_path)
    gpu = LlamaCppBackend(
        smollm2_path, rope, BackendConfig(n_gpu_layers=-1), ScalingConfig(), 1024
    )
    try:
        tokens = smollm2.tokenize(TEXT)[:1000]
        result = compare_scores(smollm2.score(tokens), gpu.score(tokens))
    finally:
        gpu.close()
    assert result["mean_abs_logprob"] < 0.05
    assert result["top1_agreement"] > 0.97


@needs_cuda_torch
@pytest.mark.slow
def test_transformers_on_the_gpu_in_bfloat16(smollm2, smollm2_path):
    gpu = load_transformers(
        smollm2_path, n_ctx=1024, device="cuda", dtype="bfloat16", n_ubatch=1024
    )
    try:
        tokens = smollm2.tokenize(TEXT)[:1000]
        result = compare_scores(smollm2.score(tokens), gpu.score(tokens))
        rope = gpu.effective_rope()
    finally:
        gpu.close()
    assert np.isfinite(result["mean_abs_logprob"])
    assert result["perplexity"] < 0.05
    assert result["top1_agreement"] > 0.9
    assert rope["inv_freq"][0] == 1.0
