"""Errors that benchbench reports to people as one line.

Every error a user can cause derives from ``BenchError``. The command line turns
it into a single ``benchbench: error: ...`` line and a non-zero exit code, so
each message must say what was wrong and which config key to change.
"""


class BenchError(Exception):
    """Base class for errors that are reported without a traceback."""


class ConfigError(BenchError):
    """A config value is missing, malformed or out of range."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


class BackendError(BenchError):
    """The backend could not load the model or run a request."""


class PositionLimitError(BackendError):
    """A sequence is longer than the model's position encoding can represent.

    Raised for a learned absolute position table (GPT-2, BERT) asked for a
    position past its last row; the runner records such a cell as refused.
    """


class CorpusError(BenchError):
    """The text corpus cannot serve the requested lengths."""


class RunError(BenchError):
    """A run directory cannot be written, read back or continued."""


class RunInterrupted(BenchError):
    """The user stopped the run; finished cells are on disk."""


def failure_reason(err: BaseException) -> str:
    """One line for a manifest's ``error``: a user error's own message, else its type too."""
    return str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
