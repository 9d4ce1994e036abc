"""The nightly gate: exit 0, 1 or 2 as documented."""

import subprocess
import sys
from pathlib import Path

from tests.report.runs import make_run

ROOT = Path(__file__).resolve().parents[2]
BASE = {(1024, 0.5): [1.0, 1.0], (2048, 0.5): [1.0, 0.0]}


def regress(baseline, candidate, *extra):
    cmd = [
        sys.executable,
        "-m",
        "benchbench.regress",
        f"baseline={baseline}",
        f"candidate={candidate}",
        *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_identical_runs_pass(tmp_path):
    a = make_run(tmp_path, "a", BASE, nll={1024: 200.0})
    b = make_run(tmp_path, "b", BASE, nll={1024: 200.0})
    result = regress(a, b)
    assert result.returncode == 0, result.stderr
    assert "5 shared cells: 0 regressions, 0 improvements" in result.stdout


def test_a_flipped_passkey_cell_fails(tmp_path):
    a = make_run(tmp_path, "a", BASE)
    b = make_run(tmp_path, "b", {(1024, 0.5): [1.0, 0.0], (2048, 0.5): [1.0, 1.0]})
    result = regress(a, b)
    assert result.returncode == 1
    assert "1 regressions, 1 improvements" in result.stdout
    lines = result.stdout.splitlines()
    assert any("regression" in line and " 1024 " in line for line in lines)


def test_perplexity_tolerance(tmp_path):
    # perplexity records hold 2.0 in both runs; the nll differs but the gate
    # compares the per-window perplexity
    a = make_run(tmp_path, "a", BASE, nll={1024: 200.0})
    b = make_run(tmp_path, "b", BASE, nll={1024: 210.0})
    assert regress(a, b).returncode == 0


def test_incomparable_inputs(tmp_path):
    a = make_run(tmp_path, "a", BASE)
    other_model = make_run(tmp_path, "b", BASE, model_sha="ef" * 32)
    result = regress(a, other_model)
    assert result.returncode == 2 and "different model files" in result.stderr
    other_scaling = make_run(tmp_path, "c", BASE, scaling="yarn")
    assert regress(a, other_scaling).returncode == 2
    assert regress(a, tmp_path / "nowhere").returncode == 2
    missing = subprocess.run(
        [sys.executable, "-m", "benchbench.regress", f"baseline={a}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "candidate" in missing.stderr
