"""A Hugging Face checkpoint folder through the transformers backend.

The folder is made here, offline: a two-layer Llama with random weights and
SmolLM2's tokenizer (converted from the embedded GGUF), saved with
``save_pretrained``; one copy plain, one declaring Llama 3.1's own scaling.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbench.config import ScalingConfig
from benchbench.errors import ConfigError
from benchbench.models import read_model_info, resolve_model_path
from benchbench.scaling import resolve
from benchbench.scaling.reference import inv_freq
from benchbench.scaling.transformers import scaling_overrides
from tests.conftest import SMOLLM2, load_transformers

ROOT = Path(__file__).resolve().parent.parent
LLAMA31 = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def test_overrides_for_a_checkpoint_scaling():
    assert scaling_overrides(LLAMA31) == [
        "scaling=llama3",
        "scaling.factor=8.0",
        "scaling.original_context_length=8192",
        "scaling.low_freq_factor=1.0",
        "scaling.high_freq_factor=4.0",
    ]
    assert scaling_overrides(
        {"rope_type": "yarn", "factor": 4.0, "short_factor": None}
    ) == [
        "scaling=yarn",
        "scaling.factor=4.0",
    ]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = resolve_model_path(SMOLLM2)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    made = {}
    for name, rope in (("plain", None), ("llama31", LLAMA31)):
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            max_position_embeddings=131072 if rope else 2048,
            rope_parameters=rope or {"rope_type": "default", "rope_theta": 10000.0},
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(name)
        LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        made[name] = folder
    return made


def test_parameters_counted_from_the_safetensors_headers(folders):
    from transformers import AutoModelForCausalLM

    from benchbench.models import parameter_count

    model = AutoModelForCausalLM.from_pretrained(folders["plain"])
    assert parameter_count(folders["plain"]) == sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.slow
def test_a_plain_checkpoint_folder_scores_and_generates(folders):
    rope, _ = read_model_info(folders["plain"])
    assert (rope.rope_theta, rope.rope_dimensions, rope.trained_context_length) == (
        10000.0,
        32,
        2048,
    )
    backend = load_transformers(folders["plain"], n_ctx=256)
    try:
        tokens = backend.tokenize("The quick brown fox jumps over the lazy dog.")
        assert backend.logprobs(tokens).shape == (len(tokens) - 1,)
        out = backend.generate(tokens, max_new_tokens=3)
        assert len(out.tokens) <= 3
    finally:
        backend.close()


@pytest.mark.slow
def test_a_checkpoint_with_its_own_scaling_needs_it_spelled_out(folders):
    rope, _ = read_model_info(folders["llama31"])
    with pytest.raises(ConfigError) as info:
        load_transformers(folders["llama31"], n_ctx=256)
    assert info.value.key == "scaling.method"
    assert "run it with scaling=llama3 scaling.factor=8.0" in str(info.value)

    scaling = ScalingConfig(method="llama3", factor=8.0, original_context_length=8192)
    backend = load_transformers(folders["llama31"], n_ctx=256, scaling=scaling)
    try:
        got = backend.effective_rope()["inv_freq"]
    finally:
        backend.close()
    np.testing.assert_allclose(got, inv_freq(resolve(scaling, rope), rope), rtol=1e-5)


@pytest.mark.slow
def test_checkpoint_folder_through_the_command(folders, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchbench",
            "model=custom",
            f"model.path={folders['plain']}",
            "backend=transformers",
            "task=[perplexity]",
            "sweep.context_lengths=[128]",
            f"results_dir={tmp_path}",
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = tmp_path.glob("*/")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["backend"]["model_class"] == "LlamaForCausalLM"
    assert len(manifest["model"]["sha256"]) == 64
