"""The contract every inference backend fulfils.

Tasks only ever talk to a ``Backend``: they build token sequences, ask for the
log-probability of each token given the ones before it, or ask for a greedy
continuation. Everything a backend needs to know about positions and RoPE is
fixed when it is constructed.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Generation:
    """A greedy continuation of a prompt."""

    text: str
    tokens: list[int]
    # why decoding ended: "eog" (end-of-generation token), "stop" (a stop
    # string appeared) or "max_new_tokens" (the budget ran out)
    finish_reason: str
    # prompt tokens whose keys and values were reused from the previous request
    reused_tokens: int = 0


class Backend(ABC):
    """A loaded model that scores and continues token sequences.

    Token sequences passed in are complete: a backend never adds a BOS token or
    truncates. A sequence longer than ``n_ctx`` is an error, not a cut.
    """

    name: str
    n_ctx: int

    @abstractmethod
    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text`` without any BOS; ``special`` parses control tokens."""

    @abstractmethod
    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens``."""

    @property
    @abstractmethod
    def bos_token_id(self) -> int | None:
        """The model's beginning-of-sequence token, if it has one."""

    @property
    @abstractmethod
    def adds_bos(self) -> bool:
        """Whether the model's own tokenizer config asks for a BOS token."""

    @abstractmethod
    def logprobs(self, tokens: Sequence[int]) -> np.ndarray:
        """Log-probabilities of ``tokens[1:]``, each given every token before it.

        Returns an array of ``len(tokens) - 1`` natural-log probabilities.
        """

    @abstractmethod
    def generate(
        self, tokens: Sequence[int], max_new_tokens: int, stop: Sequence[str] = ()
    ) -> Generation:
        """Greedy (argmax) continuation of ``tokens``."""

    @abstractmethod
    def chat_template(self) -> str | None:
        """The chat template stored with the model, if any (Jinja2 source)."""

    @abstractmethod
    def provenance(self) -> dict:
        """Versions and effective settings to record in the run manifest."""

    @abstractmethod
    def close(self) -> None:
        """Release the model; the backend is unusable afterwards."""
