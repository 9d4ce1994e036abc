"""Reference models: small decoders trained here that differ only in their position encoding.

Pretrained models come with one position encoding built in, so comparing
schemes across them compares everything else too. ``model=reference`` trains
a small model per scheme (``encoding=sinusoidal|learned|rope|alibi|nope``) on
the same text, for the same steps, with the same seed and shape, and the
runner then measures it like any other model. ``train.py`` trains and caches,
``architectures.py`` maps each scheme to a transformers model, ``data.py``
draws the training mix and ``tokenizer.py`` learns the shared vocabulary.
"""

import json
from pathlib import Path

from benchbench.scaling import RopeInfo

META = "reference.json"


def is_reference_folder(path: Path) -> bool:
    return path.is_dir() and (path / META).is_file()


def reference_model_info(folder: Path) -> tuple[RopeInfo, dict]:
    """Position facts and shape of a trained reference checkpoint, from its own records."""
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    settings, encoding = meta["reference"], meta["encoding"]
    head_dim = settings["width"] // settings["heads"]
    info = RopeInfo(
        rope_theta=float(encoding.get("rope_theta") or 0.0),
        rope_dimensions=head_dim if encoding["scheme"] == "rope" else 0,
        trained_context_length=int(settings["context_length"]),
        encoding=encoding["scheme"],
    )
    shape = {
        "general.architecture": config.get("model_type"),
        "num_hidden_layers": settings["layers"],
        "num_attention_heads": settings["heads"],
        "num_key_value_heads": settings["heads"],
        "head_dim": head_dim,
        "vocab_size": settings["vocab_size"],
    }
    return info, shape
