"""The contract every inference backend fulfils.

Tasks only ever talk to a ``Backend``: they build token sequences, ask for the
log-probability of each token given the ones before it, or ask for a greedy
continuation. Everything a backend needs to know about positions and RoPE is
fixed when it is constructed.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchbench.errors import BackendError, PositionLimitError


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


def shared_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens a new prompt shares with the cached ones.

    At most ``len(tokens) - 1``: the last token is always fed again, since its
    logits are needed.
    """
    kept, limit = 0, min(len(cached), len(tokens) - 1)
    while kept < limit and cached[kept] == tokens[kept]:
        kept += 1
    return kept


def check_rope(engine: str, got: dict, want: dict, method: str) -> None:
    """Stop when the frequencies or attention factor an engine applies are not the reference's."""
    if not np.allclose(got["inv_freq"], want["inv_freq"], rtol=1e-5, atol=0):
        worst = int(np.argmax(np.abs(np.subtract(got["inv_freq"], want["inv_freq"]))))
        raise BackendError(
            f"{engine} rotates pair {worst} at {got['inv_freq'][worst]:.9g} rad/token but "
            f"scaling={method} asks for {want['inv_freq'][worst]:.9g}; the scaling was not applied"
        )
    if not math.isclose(
        got["attention_factor"], want["attention_factor"], rel_tol=1e-6
    ):
        raise BackendError(
            f"{engine} applies attention factor {got['attention_factor']:.9g} but "
            f"scaling={method} asks for {want['attention_factor']:.9g}"
        )


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
    # the most tokens the model's positions can represent (a learned table's
    # rows); None when the encoding is defined at every position
    position_limit: int | None = None

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
    def eos_token_id(self) -> int | None:
        """The model's end-of-sequence token, if it has one."""

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

    def generate(
        self, tokens: Sequence[int], max_new_tokens: int, stop: Sequence[str] = ()
    ) -> Generation:
        """Greedy (argmax) continuation of ``tokens``."""
        tokens = list(tokens)
        self.check_fits(len(tokens) + max_new_tokens)
        kept, logits = self._prefill(tokens, max_new_tokens)

        new: list[int] = []
        finish = "max_new_tokens"
        while len(new) < max_new_tokens:
            token = int(np.argmax(logits))
            if self._ends_generation(token):
                finish = "eog"
                break
            new.append(token)
            if any(s in self.detokenize(new) for s in stop):
                finish = "stop"
                break
            if len(new) < max_new_tokens:
                logits = self._extend(token)
        return Generation(
            text=self.detokenize(new),
            tokens=new,
            finish_reason=finish,
            reused_tokens=kept,
        )

    def check_fits(self, n_tokens: int) -> None:
        """Refuse a sequence longer than the context; nothing is ever cut."""
        if self.position_limit is not None and n_tokens > self.position_limit:
            raise PositionLimitError(
                f"{n_tokens} tokens need positions up to {n_tokens - 1}, past the model's learned "
                f"table of {self.position_limit} positions"
            )
        if n_tokens > self.n_ctx:
            raise BackendError(
                f"{n_tokens} tokens do not fit the context of {self.n_ctx}; raise backend.n_ctx"
            )

    # the three steps of greedy decoding each backend supplies

    @abstractmethod
    def _prefill(
        self, tokens: list[int], max_new_tokens: int
    ) -> tuple[int, np.ndarray]:
        """Feed a prompt; return how many of its tokens were reused from the
        cache and the logits (n_vocab,) of its last token."""

    @abstractmethod
    def _extend(self, token: int) -> np.ndarray:
        """Feed one generated token after everything fed so far; return its logits."""

    @abstractmethod
    def _ends_generation(self, token: int) -> bool:
        """Whether ``token`` ends generation (end of sequence, end of turn)."""

    @abstractmethod
    def chat_template(self) -> str | None:
        """The chat template stored with the model, if any (Jinja2 source)."""

    @abstractmethod
    def provenance(self) -> dict:
        """Versions and effective settings to record in the run manifest."""

    @abstractmethod
    def close(self) -> None:
        """Release the model; the backend is unusable afterwards."""
