"""Retrieval prompts of an exact token length.

A retrieval prompt is assembled from token pieces, never from one long string
that is tokenized and cut afterwards::

    [BOS] [chat prefix] instruction  haystack[:k] needle haystack[k:]  question
    [chat suffix] answer_prefix

Each piece is tokenized on its own, so the total is known exactly. The haystack
gets whatever the other pieces and the answer budget leave of
``context_length``, so that ``prompt tokens + max_new_tokens == context_length``.
The needle goes to the sentence boundary closest to ``depth`` (the fraction of
haystack tokens before it).
"""

import hashlib
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from benchbench.backends.base import Backend
from benchbench.errors import ConfigError, CorpusError

PIECES = ("instruction", "needle", "question", "answer_prefix")
_SENTENCE_ENDS = (".", "!", "?", "\n", ".)", '."')


@dataclass(frozen=True)
class PromptTemplate:
    """The text pieces of a retrieval prompt, read from a task folder."""

    instruction: str
    needle: str
    question: str
    answer_prefix: str
    prompt_format: str
    sha256: str

    @classmethod
    def load(
        cls,
        folder: Path,
        prompt_format: str,
        placeholders: dict[str, set[str]],
        key: str,
    ):
        """Read ``<piece>.txt`` files and check each has its placeholders.

        ``placeholders`` maps a piece name to the fields it must use; ``key`` is
        the config key named when something is wrong.
        """
        if not folder.is_dir():
            raise ConfigError(key, f"template folder '{folder}' does not exist")
        texts = {}
        digest = hashlib.sha256(prompt_format.encode())
        for piece in PIECES:
            path = folder / f"{piece}.txt"
            if not path.is_file():
                raise ConfigError(key, f"'{folder}' has no {piece}.txt")
            try:
                text = path.read_text(encoding="utf-8")
                fields = {
                    name for _, name, _, _ in string.Formatter().parse(text) if name
                }
            except UnicodeDecodeError:
                raise ConfigError(key, f"{path} is not UTF-8 text") from None
            except ValueError as err:
                # str.format syntax: a literal brace is written {{ or }}
                raise ConfigError(
                    key,
                    f"{path} is not a valid template ({err}); write a literal brace as {{{{",
                ) from None
            missing = placeholders.get(piece, set()) - fields
            if missing:
                raise ConfigError(
                    key, f"{path} lacks the placeholder {{{sorted(missing)[0]}}}"
                )
            extra = fields - placeholders.get(piece, set())
            if extra:
                raise ConfigError(
                    key, f"{path} has an unknown placeholder {{{sorted(extra)[0]}}}"
                )
            texts[piece] = text
            digest.update(piece.encode() + b"\0" + text.encode() + b"\0")
        return cls(**texts, prompt_format=prompt_format, sha256=digest.hexdigest())


@dataclass(frozen=True)
class Prompt:
    """A prompt as token ids, with where the needle landed."""

    tokens: list[int]
    needle_position: int
    haystack_tokens: int
    # fraction of haystack tokens before the needle, after snapping to a sentence
    depth_actual: float

    @property
    def sha256(self) -> str:
        return hashlib.sha256(",".join(map(str, self.tokens)).encode()).hexdigest()


def sentence_boundaries(backend: Backend, haystack: Sequence[int]) -> list[int]:
    """Token offsets in ``haystack`` where a sentence has just ended (0 and the end included)."""
    # each distinct token is detokenized once, not once per occurrence
    enders = {
        t
        for t in set(haystack)
        if backend.detokenize([t]).rstrip(" ").endswith(_SENTENCE_ENDS)
    }
    bounds = [0] + [i + 1 for i, token in enumerate(haystack) if token in enders]
    if bounds[-1] != len(haystack):
        bounds.append(len(haystack))
    return bounds


class PromptBuilder:
    """Builds prompts of exact length for one template on one backend."""

    def __init__(
        self, backend: Backend, template: PromptTemplate, bos_policy: str = "model"
    ):
        self.backend = backend
        self.template = template
        self._prefix, self._suffix = self._frame(bos_policy)

    def _frame(self, bos_policy: str) -> tuple[list[int], list[int]]:
        """Tokens before the instruction and between the question and the answer."""
        backend = self.backend
        bos = backend.bos_token_id
        want_bos = bos is not None and (
            bos_policy == "always" or (bos_policy == "model" and backend.adds_bos)
        )
        if self.template.prompt_format == "completion":
            return ([bos] if want_bos else []), []

        template = backend.chat_template()
        if not template:
            raise ConfigError(
                "prompt_format",
                "the model file has no chat template; use prompt_format=completion",
            )
        marker = "\x00USER\x00"
        bos_text = backend.detokenize([bos]) if bos is not None else ""
        formatter = Jinja2ChatFormatter(
            template, eos_token="", bos_token=bos_text, add_generation_prompt=True
        )
        rendered = formatter(messages=[{"role": "user", "content": marker}]).prompt
        before, after = rendered.split(marker)
        prefix = backend.tokenize(before, special=True)
        # a template that writes the BOS itself must not get a second one
        if want_bos and not prefix[:1] == [bos]:
            prefix = [bos] + prefix
        return prefix, backend.tokenize(after, special=True)

    def _pieces(self, fields: dict[str, str]) -> list[list[int]]:
        t = self.template
        tok = self.backend.tokenize
        return [
            self._prefix,
            tok(t.instruction.format(**fields)),
            tok(t.needle.format(**fields)),
            tok(t.question.format(**fields)),
            self._suffix,
            tok(t.answer_prefix.format(**fields)),
        ]

    def build(
        self,
        haystack: Sequence[int],
        boundaries: Sequence[int],
        fields: dict[str, str],
        prompt_tokens: int,
        depth: float,
        length_key: str = "sweep.context_lengths",
    ) -> Prompt:
        """A prompt of exactly ``prompt_tokens`` tokens with the needle at ``depth``.

        ``haystack`` must hold at least as many tokens as are left for it;
        ``boundaries`` are its sentence boundaries (see ``sentence_boundaries``).
        """
        pieces = self._pieces(fields)
        prefix, instruction, needle, question, suffix, answer = pieces
        budget = prompt_tokens - sum(len(piece) for piece in pieces)
        if budget < 0:
            raise ConfigError(
                length_key,
                f"{prompt_tokens} prompt tokens cannot hold the template, which alone needs {prompt_tokens - budget}",
            )
        assert len(haystack) >= budget, "caller must supply a long enough haystack"

        cut = _closest_boundary(boundaries, round(depth * budget), budget)
        # a haystack without sentence ends would pile every needle at one spot
        if abs(cut - depth * budget) > max(0.05 * budget, 48):
            raise CorpusError(
                f"corpus: no sentence end near depth {depth} at {prompt_tokens} prompt tokens (the nearest is at "
                f"{cut / budget:.2f}); the haystack text needs sentence ends (. ! ? or line breaks)"
            )
        tokens = (
            prefix
            + instruction
            + list(haystack[:cut])
            + needle
            + list(haystack[cut:budget])
            + question
        )
        tokens += suffix + answer
        assert len(tokens) == prompt_tokens
        depth_actual = cut / budget if budget else depth
        return Prompt(
            tokens, len(prefix) + len(instruction) + cut, budget, depth_actual
        )


def _closest_boundary(boundaries: Sequence[int], target: int, limit: int) -> int:
    # the haystack may end mid-sentence, so the limit itself is no boundary
    # unless a sentence ends there; 0 (right after the instruction) always is
    usable = [b for b in boundaries if b <= limit] or [0]
    return min(usable, key=lambda b: (abs(b - target), b))


def read_lines(path: Path, key: str) -> list[str]:
    """Non-empty lines of a word-list file."""
    if not path.is_file():
        raise ConfigError(key, f"'{path}' does not exist")
    lines = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if not lines:
        raise ConfigError(key, f"'{path}' is empty")
    return lines
