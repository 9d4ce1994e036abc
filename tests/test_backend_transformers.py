"""The transformers backend computes the same model as llama.cpp, and keeps its RoPE fixed per request.

Both load the embedded SmolLM2 GGUF: llama.cpp with its quantized kernels,
transformers with a float32 copy of the dequantized weights, so scores agree
closely but not bit for bit. Loading through transformers takes about half a
minute, hence the ``slow`` marker.
"""

from pydoc_data import topics

import numpy as np
import pytest

from benchbench.config import CorpusConfig, ScalingConfig
from benchbench.corpus import load_corpus
from benchbench.errors import BackendError
from benchbench.parity import compare_scores, scored_sequence
from benchbench.scaling import RopeInfo, resolve
from benchbench.scaling.reference import inv_freq, plain_inv_freq
from tests.conftest import load_transformers

pytestmark = pytest.mark.slow

TEXT = topics.topics["assert"] + topics.topics["assignment"]
PASSKEY = (
    "There is a pass key hidden in this text. Remember it. "
    + "The grass is green. The sky is blue. The sun is yellow. " * 6
    + "The pass key is 71432. Remember it. 71432 is the pass key. "
    + "The grass is green. The sky is blue. The sun is yellow. " * 6
    + "What is the pass key? The pass key is"
)


def test_tokenizers_agree_on_the_whole_corpus(smollm2, smollm2_hf):
    text = load_corpus(CorpusConfig()).text
    assert smollm2_hf.tokenize(text) == smollm2.tokenize(text)
    assert smollm2_hf.tokenize("<|im_start|>user", special=True) == smollm2.tokenize(
        "<|im_start|>user", special=True
    )
    # without `special`, control-token text is plain text on both
    assert smollm2_hf.tokenize("<|im_start|>") == smollm2.tokenize("<|im_start|>")
    assert smollm2_hf.tokenize("<|im_start|>") != [1]


def test_bos_facts_agree(smollm2, smollm2_hf):
    assert smollm2_hf.bos_token_id == smollm2.bos_token_id == 1
    assert smollm2_hf.adds_bos is smollm2.adds_bos is False
    assert smollm2_hf.chat_template() == smollm2.chat_template()


def test_scores_agree_with_llama_cpp(smollm2, smollm2_hf):
    ids = smollm2.tokenize(TEXT)
    sequence = scored_sequence(ids, smollm2.bos_token_id, 1000)
    assert sequence[0] == 1 and sequence.count(1) == 1
    result = compare_scores(smollm2.score(sequence), smollm2_hf.score(sequence))
    # measured on 2026-12-04: mean |diff| 0.054 nats, top-1 agreement 0.974,
    # perplexity 12.83 vs 12.81; Q4_1 kernels against float32 weights
    assert result["scored_tokens"] == 999
    assert result["mean_abs_logprob"] < 0.1
    assert result["top1_agreement"] > 0.95
    assert result["perplexity"] < 0.02


def test_scores_do_not_depend_on_the_chunk_size(smollm2_path, smollm2_hf):
    small = load_transformers(smollm2_path, n_ctx=1024, n_ubatch=96)
    try:
        tokens = smollm2_hf.tokenize(TEXT)[:500]
        np.testing.assert_allclose(
            small.logprobs(tokens), smollm2_hf.logprobs(tokens), atol=1e-4
        )
    finally:
        small.close()


def test_greedy_generation_matches_llama_cpp(smollm2, smollm2_hf):
    prompt = smollm2.tokenize(PASSKEY)
    ours = smollm2_hf.generate(prompt, max_new_tokens=6)
    theirs = smollm2.generate(prompt, max_new_tokens=6)
    assert ours.text == theirs.text
    assert ours.text.strip().startswith("71432")
    assert ours.finish_reason == "max_new_tokens" and len(ours.tokens) == 6


def test_prefix_cache_gives_the_same_continuation(smollm2_hf):
    head = smollm2_hf.tokenize(TEXT)[:300]
    first = head + smollm2_hf.tokenize(" The assert statement")
    second = head + smollm2_hf.tokenize(" Augmented assignment")
    smollm2_hf.generate(first, max_new_tokens=4)
    reused = smollm2_hf.generate(second, max_new_tokens=8)
    assert reused.reused_tokens == 300
    # an unrelated prompt in between empties the cache: computed from scratch
    smollm2_hf.generate(smollm2_hf.tokenize("Hello"), max_new_tokens=1)
    fresh = smollm2_hf.generate(second, max_new_tokens=8)
    assert fresh.reused_tokens == 0
    assert fresh.tokens == reused.tokens


def test_stop_strings_and_context_limit(smollm2_hf):
    out = smollm2_hf.generate(
        smollm2_hf.tokenize("The capital of France is"), max_new_tokens=20, stop=["."]
    )
    assert out.finish_reason == "stop" and out.text.strip().startswith("Paris")
    with pytest.raises(BackendError, match="backend.n_ctx"):
        smollm2_hf.logprobs([1] * 1025)


def test_read_back_rope_is_plain_for_scaling_none(smollm2_hf):
    rope = smollm2_hf.effective_rope()
    np.testing.assert_allclose(
        rope["inv_freq"], plain_inv_freq(100000.0, 64), rtol=1e-6
    )
    assert rope["attention_factor"] == 1.0


def test_dynamic_ntk_depends_on_the_request_alone(smollm2_path):
    # an original context of 128 tokens puts the dynamic regime within reach
    scaling = ScalingConfig(method="dynamic", factor=2.0, original_context_length=128)
    backend = load_transformers(smollm2_path, n_ctx=1024, scaling=scaling)
    try:
        tokens = backend.tokenize(TEXT)
        short, long = tokens[:100], tokens[:600]
        # up to the original context: plain RoPE
        rope = backend.effective_rope(100)
        np.testing.assert_allclose(
            rope["inv_freq"], plain_inv_freq(100000.0, 64), rtol=1e-6
        )
        # past it: the base for the request's own length, as the reference says
        rope = backend.effective_rope(600)
        smol = RopeInfo(100000.0, 64, 8192)
        want = inv_freq(resolve(scaling, smol), smol, 600)
        np.testing.assert_allclose(rope["inv_freq"], want, rtol=1e-5)
        assert rope["inv_freq"][-1] < plain_inv_freq(100000.0, 64)[-1]

        before = backend.logprobs(short)
        long_scores = backend.logprobs(long)
        after = backend.logprobs(short)
        # a longer request in between leaves no trace on a shorter one
        np.testing.assert_array_equal(before, after)
        # the first 100 tokens of the long request were rotated for 600 tokens
        assert np.abs(long_scores[:99] - before).max() > 1e-3
    finally:
        backend.close()


def test_the_tokenizer_probe_catches_the_digit_split(smollm2, smollm2_hf):
    from tokenizers import pre_tokenizers

    from benchbench.backends.transformers import TOKENIZER_PROBE

    # transformers' own conversion of the GGUF tokenizer, before the repair
    backend = smollm2_hf._tokenizer.backend_tokenizer
    repaired = backend.pre_tokenizer
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, trim_offsets=True, use_regex=True
    )
    try:
        unrepaired = smollm2_hf.tokenize(TOKENIZER_PROBE)
    finally:
        backend.pre_tokenizer = repaired
    assert unrepaired != smollm2.tokenize(TOKENIZER_PROBE)
    assert smollm2_hf.tokenize(TOKENIZER_PROBE) == smollm2.tokenize(TOKENIZER_PROBE)
    assert smollm2_hf.provenance()["pre_tokenizer_repaired"] is True
