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


@dataclass(frozen=True)
class TokenScores:
    """Per-token scores of a sequence: entry i is about token i + 1."""

    # natural-log probability of each token given every token before it
    logprobs: np.ndarray
    # the token the model ranks first at each position (greedy prediction)
    argmax: np.ndarray


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

    def logprobs(self, tokens: Sequence[int]) -> np.ndarray:
        """Log-probabilities of ``tokens[1:]``, each given every token before it.

        Returns an array of ``len(tokens) - 1`` natural-log probabilities.
        """
        return self.score(tokens).logprobs

    @abstractmethod
    def score(self, tokens: Sequence[int]) -> TokenScores:
        """Log-probabilities of ``tokens[1:]`` and the top-ranked token at each position."""

    @abstractmethod
    def effective_rope(self, seq_len: int | None = None) -> dict:
        """The RoPE the model rotates with for a sequence of ``seq_len`` tokens.

        Read back from the engine, not from the config: ``inv_freq`` (radians per
        position of each rotary pair), ``attention_factor`` and what else the
        engine reports.
        """

    @property
    @abstractmethod
    def version(self) -> str:
        """The engine and its version, as one string (it keys the provenance)."""

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
