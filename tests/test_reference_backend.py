"""The transformers backend on every reference scheme.

Chunked scoring through the KV cache must give what one plain forward pass of
the model gives, for absolute (GPT-2, XGLM), rotary (GPT-NeoX) and ALiBi
(BLOOM) positions alike; generation must not depend on the prefix cache; the
learned table must refuse what it cannot represent.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbench.config import CorpusConfig, EncodingConfig, ScalingConfig
from benchbench.corpus import load_corpus
from benchbench.errors import PositionLimitError
from benchbench.reference.train import train
from tests.conftest import load_transformers
from tests.test_reference import TINY

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMES = ["sinusoidal", "learned", "rope", "alibi", "nope"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    corpus = load_corpus(CorpusConfig())
    folders = {}
    for scheme in SCHEMES:
        encoding = EncodingConfig(scheme, 10000.0 if scheme == "rope" else None)
        folder = tmp_path_factory.mktemp(scheme) / "ckpt"
        train(
            dataclasses.replace(TINY, steps=8), encoding, corpus, PROJECT_ROOT, folder
        )
        folders[scheme] = folder
    return folders


def direct_logprobs(folder: Path, tokens: list[int]) -> np.ndarray:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([tokens])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs[torch.arange(len(tokens) - 1), tokens[1:]].numpy()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_chunked_cached_scores_equal_one_forward_pass(checkpoints, scheme):
    backend = load_transformers(
        checkpoints[scheme], n_ctx=160, n_ubatch=37, attn_implementation="eager"
    )
    rng = np.random.default_rng(0)
    tokens = [backend.bos_token_id] + rng.integers(1, 400, 159).tolist()
    scores = backend.score(tokens)
    np.testing.assert_allclose(
        scores.logprobs, direct_logprobs(checkpoints[scheme], tokens), atol=2e-4
    )
    backend.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_generation_does_not_depend_on_the_prefix_cache(checkpoints, scheme):
    cached = load_transformers(
        checkpoints[scheme], n_ctx=160, n_ubatch=32, attn_implementation="eager"
    )
    fresh = load_transformers(
        checkpoints[scheme],
        n_ctx=160,
        n_ubatch=32,
        attn_implementation="eager",
        prefix_cache=False,
    )
    rng = np.random.default_rng(1)
    shared = [cached.bos_token_id] + rng.integers(1, 400, 100).tolist()
    for tail in (rng.integers(1, 400, 30).tolist(), rng.integers(1, 400, 10).tolist()):
        a = cached.generate(shared + tail, 8)
        b = fresh.generate(shared + tail, 8)
        assert a.tokens == b.tokens
        # the next-token distribution after the prompt, not just its argmax
        kept, logits_a = cached._prefill(shared + tail, 8)
        _, logits_b = fresh._prefill(shared + tail, 8)
        np.testing.assert_allclose(logits_a, logits_b, atol=1e-4)
    assert a.reused_tokens == len(shared) and b.reused_tokens == 0
    assert kept == len(shared) + len(tail) - 1


def test_the_learned_table_refuses_longer_sequences(checkpoints):
    backend = load_transformers(
        checkpoints["learned"], n_ctx=320, attn_implementation="eager"
    )
    assert backend.position_limit == 160
    backend.score([backend.bos_token_id] + [5] * 159)
    with pytest.raises(PositionLimitError, match="learned table of 160 positions"):
        backend.score([backend.bos_token_id] + [5] * 160)
    with pytest.raises(PositionLimitError):
        backend.generate([backend.bos_token_id] + [5] * 155, 10)
    assert backend.provenance()["position_limit"] == 160


@pytest.mark.parametrize("scheme", ["sinusoidal", "rope", "alibi", "nope"])
def test_other_schemes_take_any_length(checkpoints, scheme):
    backend = load_transformers(
        checkpoints[scheme], n_ctx=1024, attn_implementation="eager"
    )
    assert backend.position_limit is None
    scores = backend.score([backend.bos_token_id] + [7] * 700)
    assert np.isfinite(scores.logprobs).all()


def test_rope_reference_reads_back_plain_and_scaled_frequencies(checkpoints):
    # 32 wide / 2 heads = 16 rotary dimensions, theta 10000
    plain = load_transformers(checkpoints["rope"], attn_implementation="eager")
    expected = 10000.0 ** (-np.arange(0, 16, 2) / 16)
    np.testing.assert_allclose(plain.effective_rope()["inv_freq"], expected, rtol=1e-6)
    linear = load_transformers(
        checkpoints["rope"],
        scaling=ScalingConfig(method="linear", factor=4.0),
        attn_implementation="eager",
    )
    np.testing.assert_allclose(
        linear.effective_rope()["inv_freq"], expected / 4, rtol=1e-6
    )
