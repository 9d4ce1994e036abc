"""``python -m benchbench.parity``: both backends on the same ids, as a record."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchbench.backends.base import TokenScores
from benchbench.errors import BenchError
from benchbench.parity import ParityTolerance, compare_scores, scored_sequence, within

ROOT = Path(__file__).resolve().parent.parent


def parity(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "benchbench.parity",
            f"results_dir={tmp_path / 'results'}",
            *overrides,
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_compare_scores_by_hand():
    a = TokenScores(np.log([0.5, 0.25, 0.5, 0.5]), np.array([1, 2, 3, 4]))
    b = TokenScores(np.log([0.5, 0.5, 0.5, 0.25]), np.array([1, 2, 0, 4]))
    result = compare_scores(a, b)
    assert result["mean_abs_logprob"] == pytest.approx(2 * np.log(2) / 4)
    assert result["max_abs_logprob"] == pytest.approx(np.log(2))
    assert result["mean_logprob_difference"] == pytest.approx(0.0)
    # equal total NLL, so equal perplexities
    assert result["perplexity"] == pytest.approx(0.0, abs=1e-12)
    assert result["top1_agreement"] == 0.75
    assert within(ParityTolerance(top1_agreement=0.9), result) == [
        "mean_abs_logprob",
        "top1_agreement",
    ]


def test_scored_sequence_has_one_bos():
    assert scored_sequence([5, 6, 7, 8], 1, 3) == [1, 5, 6]
    assert scored_sequence([5, 6, 7, 8], None, 3) == [5, 6, 7]
    with pytest.raises(BenchError, match="2 BOS tokens"):
        scored_sequence([5, 1, 7, 8], 1, 4)


def test_methods_llama_cpp_cannot_run_are_refused(tmp_path):
    result = parity(tmp_path, "scaling=llama3")
    assert result.returncode == 2
    assert (
        "scaling.method: parity needs both backends, and llama.cpp cannot apply 'llama3'"
        in result.stderr
    )
    assert not (tmp_path / "results").exists() or not any(
        (tmp_path / "results").iterdir()
    )


@pytest.mark.slow
def test_parity_with_yarn_below_and_above_a_short_original_context(tmp_path):
    # an original context of 256 puts 512 tokens past it, where YaRN interpolates
    result = parity(
        tmp_path,
        "scaling=yarn",
        "scaling.factor=2",
        "scaling.original_context_length=256",
        "context_lengths=[256,512]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tokenizers identical: True" in result.stdout
    (run_dir,) = (tmp_path / "results").glob("*-parity-*")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["kind"] == "parity"
    assert manifest["tokenizers"]["identical"] is True
    both = manifest["backends"]
    np.testing.assert_allclose(
        both["llama_cpp"]["rope_effective"]["inv_freq"],
        both["transformers"]["rope_effective"]["inv_freq"],
        rtol=1e-5,
    )
    rows = [
        json.loads(line) for line in (run_dir / "parity.jsonl").read_text().splitlines()
    ]
    assert [r["context_length"] for r in rows] == [256, 512]
    for row in rows:
        assert row["scored_tokens"] == row["context_length"] - 1
        assert row["within_tolerance"], row
        assert row["scaling"] == "yarn" and row["scaling_factor"] == 2.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["context_lengths=[128,128]"], "context_lengths: has duplicates"),
        (["results_dir="], "results_dir: is empty"),
        (["tolerance.top1_agreement=2"], "tolerance.top1_agreement: is a share"),
        (["llama_cpp.name=transformers"], "llama_cpp.name: must be llama_cpp"),
    ],
)
def test_bad_parity_input_is_one_line(tmp_path, overrides, message):
    result = parity(tmp_path, *overrides)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"benchbench: error: {message}")


def test_results_dir_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = parity(tmp_path, f"results_dir={tmp_path / 'afile'}")
    assert result.returncode == 2
    assert "results_dir: " in result.stderr and "Traceback" not in result.stderr
