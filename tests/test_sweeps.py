"""Multiruns: every job in its own folder, failures recorded per job, one report over all.

Hydra runs the jobs; benchbench checks every job's config before the first
starts, records each job's outcome in its manifest, and reads a sweep folder
as one set of runs in ``benchbench.report`` and ``benchbench.regress``.
"""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchbench.cli import sweep_jobs
from benchbench.report.cli import ReportConfig, build_report
from tests.test_cli import ROOT, benchbench

# two lengths, two depths, one sample, passkey only: four cells per job
SMALL = ["sweep=smoke", "sweep.samples=1", "task=[passkey]"]


def sweep_folder(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "results").glob("multirun-*")
    return folder


def manifests(folder: Path) -> dict[str, dict]:
    return {
        path.parent.name: json.loads(path.read_text())
        for path in sorted(folder.glob("*/manifest.json"))
    }


def test_jobs_come_in_the_basic_sweepers_order():
    jobs, swept = sweep_jobs(["scaling=linear,yarn", "scaling.factor=2,4", "seed=7"])
    assert jobs == [
        ["scaling=linear", "scaling.factor=2", "seed=7"],
        ["scaling=linear", "scaling.factor=4", "seed=7"],
        ["scaling=yarn", "scaling.factor=2", "seed=7"],
        ["scaling=yarn", "scaling.factor=4", "seed=7"],
    ]
    assert swept == {"scaling", "scaling.factor"}


def test_a_bad_job_stops_the_sweep_before_any_job_runs(tmp_path):
    result = benchbench(tmp_path, "-m", "scaling=linear,none", "scaling.factor=2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "benchbench: error: job 1 (scaling=none): scaling.factor: scaling=none takes "
        "no factor; pick a method such as scaling=yarn"
    )
    assert not list((tmp_path / "results").glob("multirun-*"))


def test_launcher_configs_compose():
    """The Slurm and Ray presets resolve to their plugins with benchbench's values."""
    for launcher, expect in (
        ("slurm", {"gpus_per_node": 1, "timeout_min": 120, "partition": None}),
        ("submitit_local", {"timeout_min": 60}),
        ("ray_cluster", {"ray": {"init": {"address": "auto"}}}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "benchbench", f"hydra/launcher={launcher}"]
            + ["--cfg", "hydra", "-p", "hydra.launcher"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "_target_: hydra_plugins.hydra_" in text
        for key, value in expect.items():
            if isinstance(value, dict):
                assert "address: auto" in text
            else:
                shown = "null" if value is None else str(value)
                assert f"\n{key}: {shown}\n" in text, (launcher, key, text)


@pytest.mark.slow
def test_submitit_local_sweep_gives_one_folder_per_job_and_one_report(tmp_path):
    result = benchbench(
        tmp_path,
        "-m",
        "hydra/launcher=submitit_local",
        "scaling=linear,yarn",
        "scaling.factor=2",
        *SMALL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = sweep_folder(tmp_path)
    assert "multirun: 2 of 2 jobs complete" in result.stdout

    jobs = manifests(folder)
    assert list(jobs) == ["0", "1"]
    for number, method in (("0", "linear"), ("1", "yarn")):
        manifest = jobs[number]
        assert manifest["status"] == "complete"
        assert manifest["cells_done"] == manifest["cells_planned"] == 4
        assert manifest["run_id"] == f"{folder.name}/{number}"
        # the command that repeats this job alone, not the worker's own
        assert manifest["command"][3:] == [
            f"results_dir={tmp_path / 'results'}",
            f"scaling={method}",
            "scaling.factor=2",
            *SMALL,
        ]
        assert manifest["config"]["scaling"]["method"] == method
    # the jobs write only into their own folders; beside them lie Hydra's
    # record of the sweep and submitit's job logs
    assert {p.name for p in folder.iterdir()} == {
        "0",
        "1",
        "multirun.yaml",
        ".submitit",
    }

    page = build_report(
        ReportConfig(
            inputs=[str(folder)], output_dir=str(tmp_path / "report"), min_samples=1
        )
    )
    records = pd.read_csv(page.parent / "records.csv")
    assert sorted(records.groupby("scaling").size().items()) == [
        ("linear", 4),
        ("yarn", 4),
    ]
    assert set(records.run_id) == {f"{folder.name}/0", f"{folder.name}/1"}
    board = (page.parent / "leaderboard.md").read_text()
    rows = [line for line in board.splitlines() if "smollm2" in line]
    assert len(rows) == 2
    assert any("/ linear x2 /" in r for r in rows) and any(
        "/ yarn x2 /" in r for r in rows
    )

    # the sweep folder is one set for the regression gate too: against itself,
    # every cell of both jobs is shared and nothing changed
    gate = subprocess.run(
        [sys.executable, "-m", "benchbench.regress"]
        + [f"baseline={folder}", f"candidate={folder}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gate.returncode == 0, gate.stderr
    assert "8 shared cells: 0 regressions" in gate.stdout


@pytest.mark.slow
def test_a_failed_job_is_recorded_and_reported_without_losing_the_others(
    tmp_path, smollm2_path
):
    broken = tmp_path / "broken.gguf"
    # a GGUF magic number and then nothing a reader can use
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    result = benchbench(
        tmp_path,
        "-m",
        "model=custom",
        f"model.path={broken},{smollm2_path}",
        *SMALL,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    folder = sweep_folder(tmp_path)
    errors = [
        line for line in result.stderr.splitlines() if line.startswith("benchbench:")
    ]
    assert len(errors) == 1 and errors[0].startswith("benchbench: error: job 0 (")

    jobs = manifests(folder)
    assert jobs["0"]["status"] == "failed"
    assert jobs["0"]["error"] and str(broken) in jobs["0"]["error"]
    assert jobs["1"]["status"] == "complete" and jobs["1"]["cells_done"] == 4
    assert "multirun: 1 of 2 jobs complete" in result.stdout
    assert f"job 0: failed: {jobs['0']['error']}" in result.stdout

    page = build_report(
        ReportConfig(
            inputs=[str(folder)], output_dir=str(tmp_path / "report"), min_samples=1
        )
    )
    board = (page.parent / "leaderboard.md").read_text()
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in board.splitlines()
        if line.startswith("| custom")
    }
    assert len(rows) == 2
    failed = next(cells for label, cells in rows.items() if label.endswith("/ failed"))
    assert failed == ["failed (see Runs)"] * 2 + ["n/a (run failed)"]
    (measured,) = [
        cells for label, cells in rows.items() if not label.endswith("/ failed")
    ]
    assert all(cell.endswith("(n=2)") for cell in measured[:2])
    assert "status failed" not in page.read_text()


@pytest.mark.slow
def test_ray_sweep_on_a_local_instance(tmp_path):
    """hydra-ray-launcher with a private Ray instance on this machine, on loopback."""
    result = benchbench(
        tmp_path,
        "-m",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
        "+hydra.launcher.ray.remote.num_cpus=1",
        "scaling=linear,yarn",
        "scaling.factor=2",
        "sweep=smoke",
        "sweep.context_lengths=[256]",
        "sweep.samples=1",
        "task=[passkey]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "multirun: 2 of 2 jobs complete" in result.stdout
    jobs = manifests(sweep_folder(tmp_path))
    assert [m["status"] for m in jobs.values()] == ["complete", "complete"]
    assert [m["config"]["scaling"]["method"] for m in jobs.values()] == [
        "linear",
        "yarn",
    ]
