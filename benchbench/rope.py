"""``python -m benchbench.rope``: print the RoPE a configuration really rotates with.

Loads the model into the chosen backend with the scaling applied, reads the
effective parameters back from the engine and prints them as JSON on stdout,
beside benchbench's own reference for the same method::

    python -m benchbench.rope scaling=yarn scaling.factor=4
    python -m benchbench.rope backend=transformers scaling=dynamic scaling.factor=2 seq_len=16384

``seq_len`` matters only for the length-dependent methods (dynamic NTK,
LongRoPE); null takes the original context.
"""

import json
import logging
import sys
from dataclasses import dataclass, field

import numpy as np
from hydra.core.config_store import ConfigStore

from benchbench.backends import open_backend
from benchbench.cli import compose_or_fail, fail
from benchbench.config import BackendConfig, ModelConfig, ScalingConfig
from benchbench.errors import BenchError, ConfigError
from benchbench.models import read_model_info, resolve_model_path
from benchbench.runner import check_scaling
from benchbench.scaling import is_length_dependent, reference, resolve


@dataclass
class RopeCommand:
    model: ModelConfig = field(default_factory=ModelConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    # the sequence length a length-dependent method is evaluated at
    seq_len: int | None = None

    def validate(self) -> None:
        for part in (self.model, self.backend, self.scaling):
            part.validate()
        if self.seq_len is not None and self.seq_len <= 0:
            raise ConfigError("seq_len", f"must be positive, got {self.seq_len}")


ConfigStore.instance().store(name="rope_schema", node=RopeCommand)


def effective_rope(cmd: RopeCommand) -> dict:
    """Load the backend, read its RoPE back and set it beside the reference."""
    model_path = resolve_model_path(cmd.model, cmd.backend.name)
    rope, _ = read_model_info(model_path)
    check_scaling(cmd, rope)
    resolved = resolve(cmd.scaling, rope)
    seq_len = cmd.seq_len or resolved.original_context_length
    if not is_length_dependent(resolved.method):
        seq_len = None
    # the context size does not change the rotations; keep it small to load fast
    n_ctx = cmd.backend.n_ctx or min(seq_len or 512, 512)
    backend = open_backend(model_path, rope, cmd.backend, cmd.scaling, n_ctx)
    try:
        got = backend.effective_rope(seq_len)
    finally:
        backend.close()

    want = reference.effective(resolved, rope, seq_len)
    inv_freq = np.asarray(got["inv_freq"])
    difference = np.abs(inv_freq / np.asarray(want["inv_freq"]) - 1.0)
    return {
        "model": cmd.model.name,
        "backend": cmd.backend.name,
        "method": resolved.method,
        "factor": resolved.factor,
        "original_context_length": resolved.original_context_length,
        "seq_len": seq_len,
        "rope_theta": _effective_theta(got, want, rope.rope_dimensions),
        "attention_factor": got["attention_factor"],
        "inv_freq": got["inv_freq"],
        "reference": want,
        "max_relative_difference": float(difference.max()),
        "engine": {k: v for k, v in got.items() if k not in ("inv_freq",)},
    }


def _effective_theta(got: dict, want: dict, rope_dimensions: int) -> float:
    """The base the engine rotates with: llama.cpp reports it; for transformers it
    is implied by the first two pairs, whose ratio is theta^(2/d) for every
    method that changes the base (NTK, dynamic NTK)."""
    if "freq_base" in got:
        return got["freq_base"]
    first, second = got["inv_freq"][:2]
    implied = (first / second) ** (rope_dimensions / 2)
    return implied if want["method"] in ("ntk", "dynamic") else want["rope_theta"]


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        cmd = compose_or_fail(
            "rope", RopeCommand, sys.argv[1:] if argv is None else argv, __doc__
        )
        result = effective_rope(cmd)
    except BenchError as err:
        fail(str(err))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
