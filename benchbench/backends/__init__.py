"""Inference backends, one module each; ``open_backend`` picks one by ``backend.name``."""

from pathlib import Path

from benchbench.backends.base import Backend
from benchbench.config import BackendConfig, ScalingConfig
from benchbench.scaling import RopeInfo


def open_backend(
    model_path: Path,
    rope: RopeInfo,
    cfg: BackendConfig,
    scaling: ScalingConfig,
    n_ctx: int,
) -> Backend:
    """Load ``model_path`` into the backend ``cfg.name`` with ``scaling`` applied."""
    # each backend imports its engine only when chosen (torch takes seconds)
    if cfg.name == "transformers":
        from benchbench.backends.transformers import TransformersBackend

        return TransformersBackend(model_path, rope, cfg, scaling, n_ctx)
    from benchbench.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(model_path, rope, cfg, scaling, n_ctx)
