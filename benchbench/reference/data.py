"""Training sequences for the reference models: corpus text mixed with passkey prompts.

Every sequence is exactly ``context_length`` tokens and starts with the BOS
token, so that absolute schemes see every position of their training length
and relative ones every distance. A corpus sequence is a window of the
training text; a passkey sequence is a prompt of the passkey task itself
(same templates, same assembly), built at the training length with keys drawn
from a stream of their own, followed by the answer. Padding after the answer
is not scored.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchbench.backends.transformers import HFTokenizer
from benchbench.config import PasskeyConfig, SweepConfig
from benchbench.tasks.base import CorpusTokens
from benchbench.tasks.passkey import PasskeyTask

# labels of positions that are not scored (the value transformers ignores)
IGNORE = -100
# the passkey keys of training come from rng([TRAINING_KEY_STREAM + seed, ...]);
# evaluation runs draw theirs from rng([run seed, ...]), seeds far below this
TRAINING_KEY_STREAM = 1 << 40
# the passkey task folder whose prompts training mixes in (under the project root)
PASSKEY_TEMPLATES = "tasks/passkey"
# depths at which training hides the key: every tenth of the filler
TRAINING_DEPTHS = [round(0.1 * i, 1) for i in range(11)]


@dataclass(frozen=True)
class Batch:
    input_ids: np.ndarray  # (batch, context_length) token ids
    labels: np.ndarray  # same shape; IGNORE where not scored
    passkey: np.ndarray  # (batch,) True for a passkey row


class TrainingMix:
    """Draws training batches: corpus windows and passkey prompts, in a seeded mix."""

    def __init__(
        self,
        tokenizer,
        text_tokens: list[int],
        context_length: int,
        passkey_sequences: int,
        seed: int,
        root: Path,
    ):
        self.context_length = context_length
        self.bos = tokenizer.bos_token_id
        self.pad = tokenizer.eos_token_id
        self.text = np.asarray(text_tokens, dtype=np.int64)
        if len(self.text) < 2 * context_length:
            raise ValueError("the training text is shorter than two sequences")
        self.passkeys = (
            self._passkey_rows(tokenizer, passkey_sequences, seed, root)
            if passkey_sequences
            else np.empty((0, 2, context_length), dtype=np.int64)
        )
        self._next_passkey = 0

    def _passkey_rows(self, tokenizer, count: int, seed: int, root: Path):
        """``count`` passkey prompts with their answers, as (ids, labels) pairs."""
        view = HFTokenizer(tokenizer)
        # its templates are part of the checkpoint's hash (train.passkey_sha256)
        cfg = PasskeyConfig(template_dir=PASSKEY_TEMPLATES)
        task = PasskeyTask(cfg, TRAINING_KEY_STREAM + seed, root)
        depths = TRAINING_DEPTHS
        sweep = SweepConfig(
            name="training",
            context_lengths=[self.context_length],
            depths=depths,
            samples=-(-count // len(depths)),
        )
        task.prepare(view, CorpusTokens([], [], [0]), sweep)
        rows = np.full((count, 2, self.context_length), IGNORE, dtype=np.int64)
        rows[:, 0, :] = self.pad
        for i, cell in enumerate(task.cells(sweep)[:count]):
            fields = task.fields(cell)
            prompt = task.prompt(cell)
            tokens = prompt + view.tokenize(f" {fields['passkey']}.")
            assert len(tokens) <= self.context_length
            rows[i, 0, : len(tokens)] = tokens
            # scored: the needle, whose second copy of the key is a copy a few
            # tokens back, and the answer, a copy from anywhere in the window.
            # The filler is the same few sentences in every sequence and would
            # only drown the retrieval signal
            start = task.needle_position(cell)
            end = start + len(view.tokenize(task.template.needle.format(**fields)))
            rows[i, 1, start:end] = tokens[start:end]
            rows[i, 1, len(prompt) : len(tokens)] = tokens[len(prompt) :]
        # a fixed order, shuffled once, so that batches mix depths
        np.random.default_rng(seed).shuffle(rows)
        return rows

    def batch(self, size: int, passkey_fraction: float, rng) -> Batch:
        """``size`` sequences, each a passkey prompt with probability ``passkey_fraction``."""
        n = self.context_length
        ids = np.empty((size, n), dtype=np.int64)
        labels = np.empty((size, n), dtype=np.int64)
        passkey = (
            rng.random(size) < passkey_fraction
            if len(self.passkeys)
            else np.zeros(size, bool)
        )
        for row in range(size):
            if passkey[row]:
                ids[row], labels[row] = self.passkeys[
                    self._next_passkey % len(self.passkeys)
                ]
                self._next_passkey += 1
            else:
                start = int(rng.integers(0, len(self.text) - n))
                ids[row, 0] = self.bos
                ids[row, 1:] = self.text[start : start + n - 1]
                labels[row] = ids[row]
        return Batch(ids, labels, passkey)

    def windows(self, count: int, text_tokens: list[int]) -> Batch:
        """``count`` consecutive windows of ``text_tokens`` (for held-out loss)."""
        n = self.context_length
        ids = np.empty((count, n), dtype=np.int64)
        for row in range(count):
            ids[row, 0] = self.bos
            ids[row, 1:] = text_tokens[row * (n - 1) : (row + 1) * (n - 1)]
        return Batch(ids, ids.copy(), np.zeros(count, bool))
