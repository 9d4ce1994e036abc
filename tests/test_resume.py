"""A run killed or stopped mid-sweep resumes to the records of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["sweep=smoke", "task=[passkey,perplexity]", "sweep.context_lengths=[256,512]"]
# columns that legitimately differ between two runs of the same cells: the
# prefix cache starts cold after a resume, so reuse counts differ, not results
VOLATILE = ["run_id", "seconds", "reused_tokens"]


def start(results: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchbench", f"results_dir={results}", *ARGS, *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(results: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = start(results, *extra)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for_cells(results: Path, cells: int, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in results.glob("*/records.jsonl"):
            if len(records.read_text().splitlines()) >= cells:
                return records.parent
        time.sleep(0.05)
    raise AssertionError("the run wrote no records in time")


def records(run_dir: Path) -> pd.DataFrame:
    frame = pd.read_json(run_dir / "records.jsonl", lines=True).drop(columns=VOLATILE)
    return frame.sort_values(["cell_id", "context_length", "metric"]).reset_index(
        drop=True
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    results = tmp_path_factory.mktemp("reference")
    assert finish(results).returncode == 0
    (run_dir,) = results.glob("*/")
    return records(run_dir)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, reference):
    proc = start(tmp_path)
    run_dir = wait_for_cells(tmp_path, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"  # never claims to be complete
    assert manifest["cells_done"] < manifest["cells_planned"]

    resumed = finish(tmp_path, f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert "already measured" in resumed.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    final = records(run_dir)
    assert not final.duplicated(["cell_id", "context_length", "metric"]).any()
    pd.testing.assert_frame_equal(final, reference)


@pytest.mark.slow
def test_ctrl_c_stops_after_the_cell_and_says_how_to_resume(tmp_path, reference):
    proc = start(tmp_path)
    run_dir = wait_for_cells(tmp_path, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    (line,) = [x for x in err.splitlines() if x.startswith("benchbench: error:")]
    assert (
        "resume with: " in line
        and " -m benchbench " in line
        and f"resume={run_dir}" in line
    )
    assert "Traceback" not in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"

    # resume=true finds the newest unfinished run of the same config
    resumed = finish(tmp_path, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    pd.testing.assert_frame_equal(records(run_dir), reference)


@pytest.mark.slow
def test_resume_with_another_config_is_refused(tmp_path):
    proc = start(tmp_path)
    run_dir = wait_for_cells(tmp_path, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    refused = finish(tmp_path, f"resume={run_dir}", "seed=99")
    assert refused.returncode == 2
    assert "different config (seed: 1234 then, 99 now)" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_resume_of_a_complete_run_is_refused_and_leaves_it_alone(tmp_path):
    assert finish(tmp_path).returncode == 0
    (run_dir,) = tmp_path.glob("*/")
    before = (run_dir / "manifest.json").read_bytes()
    refused = finish(tmp_path, f"resume={run_dir}")
    assert refused.returncode == 2
    assert "already complete" in refused.stderr
    assert (run_dir / "manifest.json").read_bytes() == before
