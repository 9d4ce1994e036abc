"""The llama.cpp backend agrees with llama-cpp-python's own code paths."""

from pydoc_data import topics

import llama_cpp
import numpy as np
import pytest

from benchbench.errors import BackendError

TEXT = topics.topics["assert"] + topics.topics["assignment"]


def reference_logprobs(path, tokens, n_ctx=1024):
    """Per-token log-probabilities through the wrapper's eval() and its score matrix."""
    llm = llama_cpp.Llama(
        str(path),
        n_ctx=n_ctx,
        n_batch=n_ctx,
        logits_all=True,
        flash_attn=True,
        verbose=False,
    )
    try:
        llm.eval(tokens)
        logits = llm.scores[: len(tokens) - 1].astype(np.float64)
    finally:
        llm.close()
    peak = logits.max(axis=1, keepdims=True)
    log_norm = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    return logits[np.arange(len(tokens) - 1), tokens[1:]] - log_norm


def test_logprobs_match_the_wrapper(smollm2, smollm2_path):
    tokens = smollm2.tokenize(TEXT)[:600]
    ours = smollm2.logprobs(tokens)
    assert ours.shape == (599,)
    np.testing.assert_allclose(
        ours, reference_logprobs(smollm2_path, tokens), atol=1e-4
    )


def test_logprobs_are_independent_of_batching(smollm2_path):
    from benchbench.backends.llama_cpp import LlamaCppBackend, read_rope_info
    from benchbench.config import BackendConfig, ScalingConfig
    from tests.conftest import load_backend

    rope, _ = read_rope_info(smollm2_path)
    small = LlamaCppBackend(
        smollm2_path,
        rope,
        BackendConfig(n_batch=128, n_ubatch=128),
        ScalingConfig(),
        512,
    )
    big = load_backend(smollm2_path, n_ctx=512)
    try:
        tokens = small.tokenize(TEXT)[:500]
        np.testing.assert_allclose(
            small.logprobs(tokens), big.logprobs(tokens), atol=2e-3
        )
    finally:
        small.close()
        big.close()


def test_greedy_generation_matches_the_wrapper(smollm2, smollm2_path):
    prompt = "The capital of France is"
    ours = smollm2.generate(smollm2.tokenize(prompt), max_new_tokens=8)
    llm = llama_cpp.Llama(str(smollm2_path), n_ctx=256, flash_attn=True, verbose=False)
    try:
        theirs = llm.create_completion(prompt, max_tokens=8, temperature=0.0)[
            "choices"
        ][0]["text"]
    finally:
        llm.close()
    assert ours.text == theirs
    assert ours.finish_reason == "max_new_tokens"
    assert len(ours.tokens) == 8


def test_generation_stops_at_stop_string(smollm2):
    out = smollm2.generate(
        smollm2.tokenize("The capital of France is"), max_new_tokens=20, stop=["."]
    )
    assert out.finish_reason == "stop"
    assert out.text.strip().startswith("Paris")


def test_tokens_beyond_the_context_are_refused(smollm2):
    with pytest.raises(BackendError, match="backend.n_ctx"):
        smollm2.logprobs([1] * 1025)
    with pytest.raises(BackendError, match="backend.n_ctx"):
        smollm2.generate([1] * 1020, max_new_tokens=10)


def test_tokenizer_facts(smollm2):
    # SmolLM2's GGUF declares <|im_start|> as BOS but asks not to add it
    assert smollm2.bos_token_id == 1
    assert smollm2.adds_bos is False
    assert smollm2.tokenize("Hello world") == smollm2.tokenize(
        "Hello world", special=True
    )
    assert smollm2.tokenize("<|im_start|>", special=True) == [1]
    assert smollm2.detokenize(smollm2.tokenize("Hello world")) == "Hello world"


@pytest.mark.skipif(
    llama_cpp.llama_supports_gpu_offload(), reason="this build can offload to a GPU"
)
def test_gpu_layers_on_a_cpu_build_are_refused(smollm2_path):
    from benchbench.backends.llama_cpp import LlamaCppBackend, read_rope_info
    from benchbench.config import BackendConfig, ScalingConfig
    from benchbench.errors import ConfigError

    rope, _ = read_rope_info(smollm2_path)
    with pytest.raises(
        ConfigError, match="backend.n_gpu_layers: this llama-cpp-python"
    ):
        LlamaCppBackend(
            smollm2_path, rope, BackendConfig(n_gpu_layers=-1), ScalingConfig(), 256
        )
