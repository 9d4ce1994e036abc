"""Perplexity of long real text at growing context lengths.

Measures how well a model predicts each token of the corpus given the tokens
before it in its window. The corpus is cut into windows that start every
``stride`` tokens (by default the longest length minus one, so the longest
windows just touch); the window for length L is the first L tokens at that
start, a BOS included when the policy adds one. This is the "documents
truncated to L tokens" protocol of the position interpolation and YaRN papers:
every length reads the same text, only less of it.

Within one length every target token is scored exactly once: the first window
scores all of its tokens, each later window only the ones the previous window
of that length did not reach (the sliding-window evaluation of Press et al.
2021 and the Hugging Face perplexity guide). Without a BOS the first token of a
window has no context and is not scored.

With a RoPE method whose positions do not depend on the sequence length (all
but dynamic NTK), the first L tokens of a window see exactly what a pass of L
tokens would see, so one pass at the longest length yields every length; the
records say which was done (``one_pass``, ``pass_tokens``).

Perplexity = exp(total NLL / scored tokens), in nats. Each window and length
is written as one ``nll`` record (summed NLL, with ``scored_tokens``) and one
``perplexity`` record; lengths are aggregated from the ``nll`` records.
"""

import math
import time

from benchbench.backends.base import Backend
from benchbench.config import PerplexityConfig, SweepConfig
from benchbench.errors import ConfigError, CorpusError
from benchbench.tasks.base import Cell, CorpusTokens, Measurement, Task


class PerplexityTask(Task):
    name = "perplexity"
    metrics = ("nll", "perplexity")

    def __init__(
        self, cfg: PerplexityConfig, seed: int, length_dependent: bool = False
    ):
        self.cfg = cfg
        self.seed = seed
        # a scaling that reads the sequence length needs a pass per length
        self.one_pass = cfg.one_pass and not length_dependent
        # the backend's position limit (a learned table), known after prepare
        self._limit: int | None = None

    def settings(self) -> dict:
        return {"bos_policy": self.cfg.bos}

    def _fits(self, length: int) -> bool:
        return self._limit is None or length <= self._limit

    def cells(self, sweep: SweepConfig) -> list[Cell]:
        # a one-pass cell is a whole window at the longest length the model
        # can represent and yields records for every length up to it; each
        # longer length gets a cell of its own, which the model refuses
        lengths = sweep.context_lengths
        if self.one_pass:
            fits = [n for n in lengths if self._fits(n)]
            lengths = fits[-1:] + [n for n in lengths if not self._fits(n)]
        return [
            Cell(self.name, length, None, window)
            for length in lengths
            for window in range(self.cfg.windows)
        ]

    def prepare(
        self, backend: Backend, corpus: CorpusTokens, sweep: SweepConfig
    ) -> None:
        bos = backend.bos_token_id
        if self.cfg.bos == "always" and bos is None:
            raise ConfigError(
                "task.perplexity.bos",
                "the model has no BOS token; use bos=never or bos=model",
            )
        self._use_bos = bos is not None and (
            self.cfg.bos == "always" or (self.cfg.bos == "model" and backend.adds_bos)
        )
        self._bos = bos
        self._limit = backend.position_limit
        self._corpus = corpus.tokens
        self._lengths = list(sweep.context_lengths)

        longest = max(self._lengths)
        self._stride = self.cfg.stride or (longest - 1)
        if min(self._lengths) - self._use_bos < 2:
            raise ConfigError(
                "sweep.context_lengths",
                f"{min(self._lengths)} tokens are too few to score perplexity",
            )
        if self._stride > longest - 1:
            raise ConfigError(
                "task.perplexity.stride",
                f"{self._stride} skips tokens at context_length {longest}; use at most {longest - 1} or null",
            )
        needed = self.tokens_read
        if needed > len(self._corpus):
            raise CorpusError(
                f"corpus: {self.cfg.windows} windows at context_length {longest} need {needed} tokens "
                f"but the corpus has {len(self._corpus)}; lower task.perplexity.windows or add text "
                "with corpus.paths"
            )

    @property
    def tokens_read(self) -> int:
        """How many corpus tokens, from the start, the windows read (after ``prepare``)."""
        return (
            (self.cfg.windows - 1) * self._stride + max(self._lengths) - self._use_bos
        )

    def prompt(self, cell: Cell) -> list[int]:
        start = cell.sample * self._stride
        text_tokens = cell.context_length - self._use_bos
        return [self._bos] * self._use_bos + self._corpus[start : start + text_tokens]

    def run(self, cell: Cell, backend: Backend) -> list[Measurement]:
        sequence = self.prompt(cell)
        assert len(sequence) == cell.context_length

        started = time.perf_counter()
        logprobs = backend.logprobs(sequence)
        seconds = time.perf_counter() - started

        lengths = (
            [n for n in self._lengths if n <= cell.context_length]
            if self.one_pass and self._fits(cell.context_length)
            else [cell.context_length]
        )
        measurements = []
        for length in lengths:
            measurements += self._score(
                logprobs, length, cell.sample, seconds * length / cell.context_length
            )
        return measurements

    def _score(
        self, logprobs, length: int, window: int, seconds: float
    ) -> list[Measurement]:
        """NLL of one window at one length, from the log-probabilities of its pass."""
        # text token j sits at sequence index j + use_bos, scored by
        # logprobs[j + use_bos - 1]; a later window skips the text tokens its
        # predecessor at this length already scored
        text_tokens = length - self._use_bos
        first_new = 0 if window == 0 else max(0, text_tokens - self._stride)
        first_text = max(first_new, 0 if self._use_bos else 1)
        scored = logprobs[first_text + self._use_bos - 1 : length - 1]
        nll = float(-scored.sum())
        details = {
            # the forward pass's share of time, pro rata by length when one
            # pass serves several lengths
            "seconds": seconds,
            "scored_tokens": int(scored.size),
            # corpus offset of the first scored token; with the count, this
            # shows that windows of a length neither overlap nor leave gaps
            "first_scored_token": window * self._stride + first_text,
            "bos": self._use_bos,
            "stride": self._stride,
            "one_pass": self.one_pass,
            "pass_tokens": len(logprobs) + 1,
        }
        return [
            Measurement("nll", nll, length, details, context_length=length),
            Measurement(
                "perplexity",
                math.exp(nll / scored.size),
                length,
                dict(details),
                context_length=length,
            ),
        ]
