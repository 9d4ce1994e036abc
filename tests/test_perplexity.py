"""Perplexity accounting: each token scored once, exp(total NLL / tokens)."""

import math

import numpy as np
import pytest

from benchbench.backends.base import Backend, TokenScores
from benchbench.config import PerplexityConfig, SweepConfig
from benchbench.errors import ConfigError, CorpusError
from benchbench.tasks.base import CorpusTokens
from benchbench.tasks.perplexity import PerplexityTask


class TableBackend(Backend):
    """A fake model whose probability of token t is fixed: p(t) = PROBS[t % 4]."""

    name = "table"
    n_ctx = 10_000
    PROBS = (0.5, 0.25, 0.125, 0.125)

    def __init__(self, bos=True):
        self._bos = bos
        self.calls = []

    def tokenize(self, text, *, special=False):
        return [ord(c) for c in text]

    def detokenize(self, tokens):
        return "".join(map(chr, tokens))

    @property
    def bos_token_id(self):
        return 999

    @property
    def eos_token_id(self):
        return None

    @property
    def adds_bos(self):
        return self._bos

    def score(self, tokens):
        self.calls.append(list(tokens))
        logprobs = np.log([self.PROBS[t % 4] for t in tokens[1:]])
        # token 0 (mod 4) is always the likeliest next token
        return TokenScores(logprobs, np.zeros(len(logprobs), dtype=np.int64))

    def effective_rope(self, seq_len=None):
        return {"inv_freq": [], "attention_factor": 1.0}

    @property
    def version(self):
        return "table 1"

    # generation ends at once: the only token it would write ends it
    def _prefill(self, tokens, max_new_tokens):
        return 0, np.zeros(4)

    def _extend(self, token):
        return np.zeros(4)

    def _ends_generation(self, token):
        return True

    def chat_template(self):
        return None

    def provenance(self):
        return {}

    def close(self):
        pass


def corpus(n):
    return CorpusTokens(tokens=list(range(n)), boundaries=[0, n], paragraph_starts=[0])


def run_all(task, backend, sweep):
    task.prepare(backend, corpus(400), sweep)
    return {cell: task.run(cell, backend) for cell in task.cells(sweep)}


@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize("stride", [None, 16, 50])
def test_every_token_scored_once(bos, stride):
    backend = TableBackend(bos=bos)
    task = PerplexityTask(PerplexityConfig(windows=4, stride=stride), seed=0)
    results = run_all(task, backend, SweepConfig(context_lengths=[64], depths=[0.5]))
    spans = []
    for nll, ppl in results.values():
        assert nll.prompt_tokens == ppl.prompt_tokens == 64
        spans.append((nll.details["first_scored_token"], nll.details["scored_tokens"]))
    covered = [i for first, n in spans for i in range(first, first + n)]
    assert len(covered) == len(set(covered)), "a token was scored twice"
    first = 0 if bos else 1
    text_per_window = 64 - bos
    step = stride or 63  # the default stride is context_length - 1
    assert covered == list(range(first, 3 * step + text_per_window))
    # every call is exactly context_length tokens, with the BOS when asked for
    assert all(len(call) == 64 for call in backend.calls)
    assert all((call[0] == 999) == bos for call in backend.calls)


def test_known_distribution_gives_known_perplexity():
    # tokens 0..127 cycle through probabilities 1/2, 1/4, 1/8, 1/8 (BOS 999 is
    # context, not a target): mean NLL = (1 + 2 + 3 + 3) / 4 ln 2 = 2.25 ln 2,
    # so perplexity = 2^2.25
    backend = TableBackend(bos=True)
    task = PerplexityTask(PerplexityConfig(windows=1), seed=0)
    sweep = SweepConfig(context_lengths=[129], depths=[0.5])
    ((nll, ppl),) = run_all(task, backend, sweep).values()
    assert nll.details["scored_tokens"] == 128
    assert nll.value == pytest.approx(128 * 2.25 * math.log(2))
    assert ppl.value == pytest.approx(2**2.25)


def test_stride_that_skips_tokens_is_refused():
    task = PerplexityTask(PerplexityConfig(windows=2, stride=100), seed=0)
    with pytest.raises(ConfigError, match="task.perplexity.stride"):
        task.prepare(
            TableBackend(), corpus(400), SweepConfig(context_lengths=[64], depths=[0.5])
        )


def test_corpus_too_short_is_refused():
    task = PerplexityTask(PerplexityConfig(windows=10), seed=0)
    with pytest.raises(CorpusError, match="task.perplexity.windows"):
        task.prepare(
            TableBackend(), corpus(400), SweepConfig(context_lengths=[64], depths=[0.5])
        )


def measure(one_pass: bool, backend, lengths=(16, 32, 64), windows=3):
    task = PerplexityTask(PerplexityConfig(windows=windows, one_pass=one_pass), seed=0)
    sweep = SweepConfig(context_lengths=list(lengths), depths=[0.5])
    task.prepare(backend, corpus(400), sweep)
    out = {}
    for cell in task.cells(sweep):
        for m in task.run(cell, backend):
            if m.metric == "nll":
                out[(m.context_length, cell.sample)] = (
                    m.value,
                    m.details["first_scored_token"],
                    m.details["scored_tokens"],
                )
    return out


def test_one_pass_gives_every_length_what_a_pass_per_length_gives():
    single, per_length = TableBackend(), TableBackend()
    one = measure(True, single)
    many = measure(False, per_length)
    assert one == many
    assert len(one) == 3 * 3
    # 3 windows: one pass each at 64 tokens, against one per length and window
    assert [len(c) for c in single.calls] == [64, 64, 64]
    assert sorted(len(c) for c in per_length.calls) == [16] * 3 + [32] * 3 + [64] * 3


def test_windows_are_aligned_across_lengths():
    one = measure(True, TableBackend(bos=True))
    # windows start every 63 tokens (longest - 1); length L scores L - 1 tokens of each
    for (length, window), (_, first, count) in one.items():
        assert first == window * 63
        assert count == length - 1


def test_one_pass_on_the_real_model(smollm2):
    from benchbench.config import CorpusConfig
    from benchbench.corpus import load_corpus
    from benchbench.runner import tokenize_corpus

    tokens = tokenize_corpus(smollm2, load_corpus(CorpusConfig()))
    results = {}
    for one_pass in (True, False):
        task = PerplexityTask(PerplexityConfig(windows=1, one_pass=one_pass), seed=0)
        sweep = SweepConfig(context_lengths=[128, 512], depths=[0.5])
        task.prepare(smollm2, tokens, sweep)
        results[one_pass] = {
            m.context_length: m.value
            for c in task.cells(sweep)
            for m in task.run(c, smollm2)
            if m.metric == "nll"
        }
    assert results[True].keys() == results[False].keys() == {128, 512}
    for length in (128, 512):
        # the same tokens in the same positions; only the batch shape differs
        assert results[True][length] == pytest.approx(results[False][length], rel=1e-3)
