"""Passkey retrieval (Mohtashami & Jaggi, 2023, "Landmark Attention").

Measures whether a model can copy a random number hidden in a long stretch of
repeated, meaningless filler. The filler carries no information, so the task
isolates one question: can attention still find and read a token span at this
distance? The length axis is the total context in the model's own tokens,
prompt and answer budget together; depth is the fraction of filler tokens
before the key. Scoring is exact match of the first number in the greedy
continuation against the key.
"""

import math
from pathlib import Path

from benchbench.backends.base import Backend
from benchbench.config import PasskeyConfig, SweepConfig
from benchbench.errors import ConfigError
from benchbench.tasks.base import Cell, CorpusTokens
from benchbench.tasks.prompt import sentence_boundaries
from benchbench.tasks.retrieval import RetrievalTask, first_number


class PasskeyTask(RetrievalTask):
    name = "passkey"
    placeholders = {"needle": {"passkey"}}

    def __init__(self, cfg: PasskeyConfig, seed: int, root: Path):
        super().__init__(cfg, seed, root)
        filler = self.folder / "filler.txt"
        if not filler.is_file() or not filler.read_text(encoding="utf-8").strip():
            raise ConfigError(
                "task.passkey.template_dir", f"'{filler}' is missing or empty"
            )
        self.filler = filler.read_text(encoding="utf-8")

    def _prepare_haystack(
        self, backend: Backend, corpus: CorpusTokens, sweep: SweepConfig
    ) -> None:
        # the answer budget must hold the longest key the model could write
        answer = len(backend.tokenize(" " + "9" * self.cfg.digits))
        if answer > self.cfg.max_new_tokens:
            raise ConfigError(
                "task.passkey.max_new_tokens",
                f"{self.cfg.max_new_tokens} tokens cannot hold a {self.cfg.digits}-digit key, which takes "
                f"{answer} tokens here; raise task.passkey.max_new_tokens",
            )
        # one filler unit, repeated as token ids: the pieces start with a space,
        # so joining their ids equals tokenizing the joined text
        unit = backend.tokenize(self.filler)
        repeats = math.ceil(max(sweep.context_lengths) / len(unit)) + 1
        self._tokens = unit * repeats
        unit_bounds = sentence_boundaries(backend, unit)[1:]
        self._boundaries = [0] + [
            i * len(unit) + b for i in range(repeats) for b in unit_bounds
        ]

    def fields(self, cell: Cell) -> dict[str, str]:
        rng = self.rng(cell.context_length, round(cell.depth * 10_000), cell.sample)
        digits = self.cfg.digits
        return {"passkey": str(rng.integers(10 ** (digits - 1), 10**digits))}

    def haystack(self, cell: Cell) -> tuple[list[int], list[int]]:
        return self._tokens, self._boundaries

    def target(self, fields: dict[str, str]) -> str:
        return fields["passkey"]

    def is_correct(self, output: str, fields: dict[str, str]) -> bool:
        return first_number(output) == fields["passkey"]

    def settings(self) -> dict:
        return {**super().settings(), "digits": self.cfg.digits}
