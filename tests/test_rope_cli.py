"""``python -m benchbench.rope`` prints what the engine rotates with, beside the reference."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchbench.config import ScalingConfig
from benchbench.scaling import RopeInfo, resolve
from benchbench.scaling.reference import inv_freq

ROOT = Path(__file__).resolve().parent.parent
SMOL = RopeInfo(rope_theta=100000.0, rope_dimensions=64, trained_context_length=8192)


def rope_command(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchbench.rope", *overrides],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_llama_cpp_yarn_as_json():
    result = rope_command("scaling=yarn", "scaling.factor=4")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["backend"] == "llama_cpp"
    assert (report["method"], report["factor"]) == ("yarn", 4.0)
    assert report["original_context_length"] == 8192
    assert report["rope_theta"] == 100000.0
    # 0.1 ln 4 + 1, as llama.cpp applies it
    assert report["attention_factor"] == pytest.approx(1.1386294, abs=1e-6)
    want = inv_freq(resolve(ScalingConfig(method="yarn", factor=4.0), SMOL), SMOL)
    np.testing.assert_allclose(report["inv_freq"], want, rtol=1e-5)
    assert report["max_relative_difference"] < 1e-5
    assert report["engine"]["freq_scale"] == 0.25


def test_llama_cpp_refuses_dynamic_and_names_the_backend_that_can():
    result = rope_command("scaling=dynamic")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "benchbench: error: scaling.method: llama.cpp cannot apply 'dynamic' at run time "
        "(it has no flag for it); run it with backend=transformers, or pick one of none, linear, ntk, yarn"
    ]


def test_bad_seq_len_is_one_line():
    result = rope_command("seq_len=-4")
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "benchbench: error: seq_len: must be positive, got -4"
    )


@pytest.mark.slow
def test_transformers_dynamic_ntk_at_a_given_length():
    result = rope_command(
        "backend=transformers", "scaling=dynamic", "scaling.factor=2", "seq_len=16384"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["seq_len"] == 16384
    # ratio 2 * 16384 / 8192 - 1 = 3: base 1e5 * 3^(64/62)
    assert report["rope_theta"] == pytest.approx(100000.0 * 3 ** (64 / 62), rel=1e-4)
    want = inv_freq(
        resolve(ScalingConfig(method="dynamic", factor=2.0), SMOL), SMOL, 16384
    )
    np.testing.assert_allclose(report["inv_freq"], want, rtol=1e-5)
    assert report["engine"]["rope_type"] == "dynamic"


def test_help_and_cfg_job():
    result = rope_command("--help")
    assert result.returncode == 0
    assert "python -m benchbench.rope" in result.stdout
    result = rope_command("--cfg", "job", "scaling=yarn")
    assert result.returncode == 0
    assert "method: yarn" in result.stdout and "seq_len: null" in result.stdout
    result = rope_command("--verbose")
    assert result.returncode == 2 and "--verbose: unknown flag" in result.stderr
