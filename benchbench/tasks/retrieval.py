"""Shared machinery of the retrieval tasks: hide a needle, ask for it, score.

Passkey and needle differ only in their haystack (repeated filler or real
prose), what the needle says and how an answer is judged; the grid, the exact
prompt lengths and greedy decoding are the same and live here.
"""

import re
import time
from abc import abstractmethod
from pathlib import Path

import numpy as np

from benchbench.backends.base import Backend
from benchbench.config import PromptTaskConfig, SweepConfig
from benchbench.errors import ConfigError
from benchbench.tasks.base import Cell, CorpusTokens, Measurement, Task
from benchbench.tasks.prompt import Prompt, PromptBuilder, PromptTemplate


class RetrievalTask(Task):
    """A needle at a depth inside a haystack, answered by greedy decoding."""

    # placeholders each template piece must use, e.g. {"needle": {"passkey"}}
    placeholders: dict[str, set[str]]
    metrics = ("exact_match",)
    # decoding ends early once one of these appears in the output
    stop: tuple[str, ...] = ("\n",)

    def __init__(self, cfg: PromptTaskConfig, seed: int, root: Path):
        self.cfg = cfg
        self.seed = seed
        self.folder = root / cfg.template_dir
        self.template = PromptTemplate.load(
            self.folder,
            cfg.prompt_format,
            self.placeholders,
            key=f"task.{self.name}.template_dir",
        )
        self._prompts: dict[Cell, tuple[Prompt, dict]] = {}

    def rng(self, *parts: int) -> np.random.Generator:
        """A generator seeded by the run seed and the given cell coordinates."""
        return np.random.default_rng([self.seed, *parts])

    @abstractmethod
    def fields(self, cell: Cell) -> dict[str, str]:
        """Values for the template placeholders of one cell."""

    @abstractmethod
    def haystack(self, cell: Cell) -> tuple[list[int], list[int]]:
        """Haystack tokens for a cell (at least as many as needed) and their sentence boundaries."""

    @abstractmethod
    def is_correct(self, output: str, fields: dict[str, str]) -> bool:
        """Whether the generated ``output`` retrieves the needle."""

    def settings(self) -> dict:
        return {
            "prompt_format": self.cfg.prompt_format,
            "max_new_tokens": self.cfg.max_new_tokens,
            "template_sha256": self.template.sha256,
        }

    def cells(self, sweep: SweepConfig) -> list[Cell]:
        # depths vary fastest: neighbouring cells share a haystack
        return [
            Cell(self.name, length, depth, sample)
            for length in sweep.context_lengths
            for sample in range(sweep.samples)
            for depth in sweep.depths
        ]

    def prepare(
        self, backend: Backend, corpus: CorpusTokens, sweep: SweepConfig
    ) -> None:
        self.builder = PromptBuilder(backend, self.template)
        self._prepare_haystack(backend, corpus, sweep)

        # every prompt is assembled now, so a length that cannot hold the
        # template fails before any forward pass
        for cell in self.cells(sweep):
            answer_budget = self.cfg.max_new_tokens
            if cell.context_length <= answer_budget:
                raise ConfigError(
                    "sweep.context_lengths",
                    f"{cell.context_length} tokens leave no room for a prompt next to "
                    f"task.{self.name}.max_new_tokens={answer_budget}",
                )
            fields = self.fields(cell)
            tokens, boundaries = self.haystack(cell)
            prompt = self.builder.build(
                tokens,
                boundaries,
                fields,
                cell.context_length - answer_budget,
                cell.depth,
            )
            self._prompts[cell] = (prompt, fields)

    def _prepare_haystack(
        self, backend: Backend, corpus: CorpusTokens, sweep: SweepConfig
    ) -> None:
        """Hook for tasks that build their haystack once per run."""

    def prompt(self, cell: Cell) -> list[int]:
        return self._prompts[cell][0].tokens

    def needle_position(self, cell: Cell) -> int:
        """Where the needle's first token sits in the cell's prompt."""
        return self._prompts[cell][0].needle_position

    def haystack_group(self, cell: Cell) -> int:
        """Cells of one group share their haystack's beginning, whatever the length."""
        return 0

    def run_order(self, cells: list[Cell]) -> list[Cell]:
        # two prompts over the same haystack share every token before the
        # earlier needle; with needles visited from last to first, each prompt
        # shares all tokens before its own needle with the one before it, and
        # the backend's prefix cache skips them
        def key(cell: Cell):
            return (
                self.haystack_group(cell),
                -self._prompts[cell][0].needle_position,
                -cell.context_length,
            )

        return sorted(cells, key=key)

    def run(self, cell: Cell, backend: Backend) -> list[Measurement]:
        prompt, fields = self._prompts[cell]
        started = time.perf_counter()
        generation = backend.generate(
            prompt.tokens, self.cfg.max_new_tokens, stop=self.stop
        )
        correct = self.is_correct(generation.text, fields)
        details = {
            "seconds": time.perf_counter() - started,
            "target": self.target(fields),
            "output": generation.text,
            "finish_reason": generation.finish_reason,
            "reused_tokens": generation.reused_tokens,
            "needle_position": prompt.needle_position,
            "depth_actual": round(prompt.depth_actual, 4),
            "prompt_sha256": prompt.sha256,
        }
        return [Measurement("exact_match", float(correct), len(prompt.tokens), details)]

    @abstractmethod
    def target(self, fields: dict[str, str]) -> str:
        """The answer the model should give."""


def first_number(text: str) -> str:
    match = re.search(r"\d+", text)
    return match.group() if match else ""
