"""Perplexity of long real text at growing context lengths.

Measures how well a model predicts each token of the corpus given up to
``context_length - 1`` tokens before it, in windows of exactly
``context_length`` tokens (a BOS included when the policy adds one). Window w
starts ``w * stride`` text tokens into the corpus; every target token is scored
exactly once: the first window scores all of its tokens, each later window only
the ones the previous window did not reach (the sliding-window evaluation of
Press et al. 2021 and of the Hugging Face perplexity guide). The default stride,
``context_length - 1``, makes each window score ``context_length - 1`` new
tokens: with a BOS the windows just touch; without one they overlap by the one
token that gives the first target its context. Without a BOS the very first
token of the corpus has no context and is not scored.

Perplexity = exp(total NLL / scored tokens), in nats. Each window is written as
one ``nll`` record (summed NLL, with ``scored_tokens``) and one ``perplexity``
record; lengths are aggregated from the ``nll`` records.
"""

import math
import time

from benchbench.backends.base import Backend
from benchbench.config import PerplexityConfig, SweepConfig
from benchbench.errors import ConfigError, CorpusError
from benchbench.tasks.base import Cell, CorpusTokens, Measurement, Task


class PerplexityTask(Task):
    name = "perplexity"

    def __init__(self, cfg: PerplexityConfig, seed: int):
        self.cfg = cfg
        self.seed = seed

    def settings(self) -> dict:
        return {"bos_policy": self.cfg.bos}

    def cells(self, sweep: SweepConfig) -> list[Cell]:
        return [
            Cell(self.name, length, None, window)
            for length in sweep.context_lengths
            for window in range(self.cfg.windows)
        ]

    def prepare(
        self, backend: Backend, corpus: CorpusTokens, sweep: SweepConfig
    ) -> None:
        bos = backend.bos_token_id
        policy = self.cfg.bos
        if policy == "always" and bos is None:
            raise ConfigError(
                "task.perplexity.bos",
                "the model has no BOS token; use bos=never or bos=model",
            )
        self._use_bos = bos is not None and (
            policy == "always" or (policy == "model" and backend.adds_bos)
        )
        self._bos = bos
        self._corpus = corpus.tokens

        for length in sweep.context_lengths:
            text_tokens = length - self._use_bos
            stride = self.stride(length)
            if text_tokens < 2:
                raise ConfigError(
                    "sweep.context_lengths",
                    f"{length} tokens are too few to score perplexity",
                )
            if stride > length - 1:
                raise ConfigError(
                    "task.perplexity.stride",
                    f"{stride} skips tokens at context_length {length}; use at most {length - 1} or null",
                )
            needed = (self.cfg.windows - 1) * stride + text_tokens
            if needed > len(self._corpus):
                raise CorpusError(
                    f"corpus: {self.cfg.windows} windows at context_length {length} need {needed} tokens "
                    f"but the corpus has {len(self._corpus)}; lower task.perplexity.windows or add text "
                    "with corpus.paths"
                )

    def stride(self, length: int) -> int:
        """Text tokens between window starts: the new targets each window scores."""
        return self.cfg.stride or (length - 1)

    def prompt(self, cell: Cell) -> list[int]:
        text_tokens = cell.context_length - self._use_bos
        start = cell.sample * self.stride(cell.context_length)
        return [self._bos] * self._use_bos + self._corpus[start : start + text_tokens]

    def run(self, cell: Cell, backend: Backend) -> list[Measurement]:
        length, window = cell.context_length, cell.sample
        text_tokens = length - self._use_bos
        stride = self.stride(length)
        start = window * stride
        sequence = self.prompt(cell)
        assert len(sequence) == length

        started = time.perf_counter()
        logprobs = backend.logprobs(sequence)
        seconds = time.perf_counter() - started

        # logprobs[i] scores sequence[i + 1]; text token j sits at sequence
        # index j + use_bos. Window 0 scores every text token it can; a later
        # window only those past the previous window's end.
        first_new = 0 if window == 0 else text_tokens - stride
        first_text = max(first_new, 0 if self._use_bos else 1)
        scored = logprobs[first_text + self._use_bos - 1 :]
        nll = float(-scored.sum())
        details = {
            "seconds": seconds,
            "scored_tokens": int(scored.size),
            # corpus offset of the first scored token; with the count, this
            # shows that windows neither overlap nor leave gaps
            "first_scored_token": start + first_text,
            "bos": self._use_bos,
            "stride": stride,
        }
        return [
            Measurement("nll", nll, length, details),
            Measurement(
                "perplexity", math.exp(nll / scored.size), length, dict(details)
            ),
        ]
