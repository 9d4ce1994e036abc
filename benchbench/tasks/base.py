"""What a task is: a grid of cells, each measured on a backend.

A cell is one point of the sweep (task, context_length, depth, sample). Running
it yields one or more measurements; the runner adds the run's provenance and
writes each as a record.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from benchbench.backends.base import Backend
from benchbench.config import SweepConfig


@dataclass(frozen=True)
class Cell:
    task: str
    context_length: int
    # fraction of the haystack before the needle; None for tasks without one
    depth: float | None
    sample: int

    @property
    def id(self) -> str:
        """A stable name for the cell, used to match records across resumed runs."""
        # repr keeps every digit, so two depths never share an id
        depth = "-" if self.depth is None else repr(float(self.depth))
        return f"{self.task}/{self.context_length}/{depth}/{self.sample}"


@dataclass
class Measurement:
    metric: str
    # None when the model refused the cell (details["refused"] says why)
    value: float | None
    prompt_tokens: int
    # task-specific columns: generated text, needle position, scored tokens...
    details: dict = field(default_factory=dict)
    # the length this measurement is for, when a cell measures several
    context_length: int | None = None


@dataclass(frozen=True)
class CorpusTokens:
    """The corpus in the evaluated model's tokens, shared by all tasks of a run."""

    tokens: list[int]
    # offsets right after a sentence end; needles are placed there
    boundaries: list[int]
    # offsets right after a newline; haystacks start there
    paragraph_starts: list[int]


class Task(ABC):
    name: str
    # the metrics each cell yields, in the order of its records
    metrics: tuple[str, ...]

    @abstractmethod
    def prepare(
        self, backend: Backend, corpus: CorpusTokens, sweep: SweepConfig
    ) -> None:
        """Check the sweep against this task and build what every cell shares.

        Raises a ``BenchError`` for anything that would fail later, so that no
        work starts on a sweep that cannot finish.
        """

    @abstractmethod
    def cells(self, sweep: SweepConfig) -> list[Cell]:
        """Every cell of the sweep for this task, in the order to run them."""

    def run_order(self, cells: list[Cell]) -> list[Cell]:
        """The order to measure ``cells`` in (after ``prepare``); by default as given."""
        return cells

    @abstractmethod
    def run(self, cell: Cell, backend: Backend) -> list[Measurement]:
        """Measure one cell."""

    @abstractmethod
    def prompt(self, cell: Cell) -> list[int]:
        """The exact token ids the cell will feed the model (after ``prepare``)."""

    @abstractmethod
    def settings(self) -> dict:
        """Settings that define this task's numbers, recorded with each one."""
