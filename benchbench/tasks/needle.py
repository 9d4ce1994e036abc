"""Needle in a haystack on real prose (after Kamradt's NIAH and RULER's single-needle task).

Measures whether a model can retrieve one fact sentence placed inside long
natural text. Unlike passkey filler, the haystack is real prose from the
corpus, so the needle competes with meaningful context. Each sample draws a
haystack start in the corpus, a key and a value; the needle sentence then moves
through the grid of depths in the same haystack. The length axis is the total
context in the model's tokens, answer budget included; depth is the fraction
of haystack tokens before the needle. Scoring is exact match (case-insensitive)
of the generated word, read up to the closing quote, against the value.
"""

from bisect import bisect_left, bisect_right
from pathlib import Path

from benchbench.backends.base import Backend
from benchbench.config import NeedleConfig, SweepConfig
from benchbench.errors import CorpusError
from benchbench.tasks.base import Cell, CorpusTokens
from benchbench.tasks.prompt import read_lines
from benchbench.tasks.retrieval import RetrievalTask


class NeedleTask(RetrievalTask):
    name = "needle"
    placeholders = {
        "needle": {"key", "value"},
        "question": {"key"},
        "answer_prefix": {"key"},
    }
    # the answer prefix opens a quote; the value ends where the quote closes
    stop = ('"', "\n")

    def __init__(self, cfg: NeedleConfig, seed: int, root: Path):
        super().__init__(cfg, seed, root)
        self.keys = read_lines(self.folder / "keys.txt", "task.needle.template_dir")
        self.values = read_lines(self.folder / "values.txt", "task.needle.template_dir")

    def _prepare_haystack(
        self, backend: Backend, corpus: CorpusTokens, sweep: SweepConfig
    ) -> None:
        self._corpus = corpus
        longest = max(sweep.context_lengths)
        self._starts = [
            p for p in corpus.paragraph_starts if p + longest <= len(corpus.tokens)
        ]
        if not self._starts:
            raise CorpusError(
                f"corpus: {len(corpus.tokens)} tokens cannot hold a needle haystack of {longest}; "
                "add text with corpus.paths or lower sweep.context_lengths"
            )

    def fields(self, cell: Cell) -> dict[str, str]:
        rng = self.rng(cell.context_length, round(cell.depth * 10_000), cell.sample)
        return {
            "key": str(rng.choice(self.keys)),
            "value": str(rng.choice(self.values)),
        }

    def haystack(self, cell: Cell) -> tuple[list[int], list[int]]:
        # one start per sample, shared by every length and depth of that sample
        start = self._starts[int(self.rng(cell.sample).integers(len(self._starts)))]
        corpus = self._corpus
        end = start + cell.context_length
        lo, hi = (
            bisect_left(corpus.boundaries, start),
            bisect_right(corpus.boundaries, end),
        )
        bounds = [b - start for b in corpus.boundaries[lo:hi]]
        return corpus.tokens[start:end], bounds

    def haystack_group(self, cell: Cell) -> int:
        return cell.sample  # each sample has its own haystack start

    def target(self, fields: dict[str, str]) -> str:
        return fields["value"]

    def is_correct(self, output: str, fields: dict[str, str]) -> bool:
        answer = output.split('"')[0].strip().strip(".").lower()
        return answer == fields["value"].lower()
