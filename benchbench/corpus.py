"""Long real text for haystacks and perplexity, with its provenance.

The default corpus is the Python reference documentation that every CPython
ships as ``pydoc_data.topics`` (about 465 KB of English prose), so a fresh
machine has real long-form text without the project copying any. Users can
point ``corpus.paths`` at their own UTF-8 files instead.
"""

import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path

from benchbench.config import CorpusConfig
from benchbench.errors import CorpusError


@dataclass(frozen=True)
class Corpus:
    text: str
    source: str
    sha256: str

    def provenance(self) -> dict:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "characters": len(self.text),
        }


def load_corpus(cfg: CorpusConfig) -> Corpus:
    """Read the configured text and fingerprint it."""
    if cfg.source == "pydoc":
        from pydoc_data import topics

        # sorted topic names keep the order independent of dict insertion
        text = "\n\n".join(topics.topics[name] for name in sorted(topics.topics))
        source = f"pydoc_data.topics (Python {platform.python_version()})"
    else:
        text = "\n\n".join(_read_text_file(Path(p)) for p in cfg.paths)
        source = "files: " + ", ".join(str(Path(p).resolve()) for p in cfg.paths)

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Corpus(text=text, source=source, sha256=digest)


def _read_text_file(path: Path) -> str:
    if not path.is_file():
        raise CorpusError(f"corpus.paths: '{path}' is not a readable file")
    data = path.read_bytes()
    if b"\x00" in data:
        raise CorpusError(
            f"corpus.paths: '{path}' looks binary (it contains NUL bytes); give a UTF-8 text file"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(
            f"corpus.paths: '{path}' is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    if not text.strip():
        raise CorpusError(f"corpus.paths: '{path}' is empty")
    return text
