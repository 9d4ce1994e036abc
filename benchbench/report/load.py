"""Finding runs and reading their records through their manifests."""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchbench.errors import RunError
from benchbench.records import MANIFEST, load_complete_cells, read_manifest

log = logging.getLogger(__name__)

# one leaderboard row; `setup` (a hash of the model file, backend version and
# corpus) keeps results apart that share names but not their inputs
CONFIG_COLUMNS = ["model", "backend", "encoding", "scaling", "scaling_factor", "setup"]
SETUP_COLUMNS = ["model_sha256", "backend", "backend_version", "corpus_sha256"]


@dataclass(frozen=True)
class Run:
    path: Path
    manifest: dict

    @property
    def status(self) -> str:
        return self.manifest.get("status", "unknown")

    def records(self) -> pd.DataFrame:
        # the manifest names its records file; nothing here guesses file names
        name = self.manifest.get("records")
        if not name:
            raise RunError(f"{self.path / MANIFEST} names no records file")
        frame = pd.DataFrame(load_complete_cells(self.path / name))
        if frame.empty:
            return frame
        model = self.manifest.get("model", {})
        frame["trained_context_length"] = model.get("trained_context_length")
        setup = frame[SETUP_COLUMNS].astype(str).agg("|".join, axis=1)
        frame["setup"] = setup.map(
            lambda text: hashlib.sha256(text.encode()).hexdigest()[:16]
        )
        frame["run_dir"] = str(self.path)
        frame["run_status"] = self.status
        return frame

    def planned_cells(self) -> list[tuple[str, int]]:
        """The (task, context_length) pairs the run's config asked for."""
        config = self.manifest.get("config") or {}
        tasks = [name for name, cfg in (config.get("task") or {}).items() if cfg]
        lengths = (config.get("sweep") or {}).get("context_lengths") or []
        return [(task, int(length)) for task in tasks for length in lengths]

    def finished_lengths(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` without the (task, length) groups the run did not finish.

        A failed run may stop halfway through a length; those of its samples
        would pass for the length's score, so the whole length goes.
        """
        config = self.manifest.get("config") or {}
        sweep, tasks = config.get("sweep") or {}, config.get("task") or {}
        per_length = len(sweep.get("depths") or []) * int(sweep.get("samples") or 0)
        keep = []
        for (task, _), group in frame.groupby(["task", "context_length"]):
            if task == "perplexity":
                expected = int((tasks.get("perplexity") or {}).get("windows") or 1)
                done = int((group.metric == "nll").sum())
            else:
                expected = per_length
                done = len(group[["depth", "sample"]].drop_duplicates())
            if done >= expected:
                keep.append(group)
        return pd.concat(keep) if keep else frame.iloc[0:0]

    def config_fields(self) -> dict:
        """The leaderboard row the run's config belongs to, read from its manifest."""
        config = self.manifest.get("config") or {}
        model, scaling = config.get("model") or {}, config.get("scaling") or {}
        return {
            "model": model.get("name"),
            "backend": (config.get("backend") or {}).get("name"),
            "encoding": model.get("encoding"),
            "scaling": scaling.get("method"),
            "scaling_factor": scaling.get("factor"),
        }


def find_runs(inputs: list[Path]) -> list[Run]:
    """Every run directory at or below the given paths (multirun folders included)."""
    runs = []
    for root in inputs:
        if not root.exists():
            raise RunError(f"'{root}' does not exist")
        manifests = (
            [root / MANIFEST]
            if (root / MANIFEST).is_file()
            else sorted(root.rglob(MANIFEST))
        )
        runs += [Run(path.parent, read_manifest(path.parent)) for path in manifests]
    return runs


def load_records(
    runs: list[Run], include_failed: bool = False
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Records of complete runs, one row per measurement, and why others were left out.

    With ``include_failed``, the finished cells of failed runs come too (their
    ``run_status`` says so), for a report that shows what such a run measured
    before it failed.
    """
    frames, left_out = [], {}
    kept = ("complete", "failed") if include_failed else ("complete",)
    for run in runs:
        if run.manifest.get("kind") == "parity":
            # read by load_parity; a parity check has no sweep records
            continue
        if run.status not in kept:
            left_out[str(run.path)] = f"status {run.status}"
            continue
        if run.status == "failed" and not run.planned_cells():
            # without its config there is no telling which lengths it finished
            left_out[str(run.path)] = "status failed, and no config in its manifest"
            continue
        try:
            frame = run.records()
        except RunError as err:
            left_out[str(run.path)] = str(err)
            continue
        if run.status == "failed" and not frame.empty:
            frame = run.finished_lengths(frame)
        if not frame.empty:
            frames.append(frame)
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return records, left_out


def load_parity(runs: list[Run]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Records of complete backend parity checks (one row per length), and why others were left out."""
    frames, left_out = [], {}
    for run in runs:
        if run.manifest.get("kind") != "parity":
            continue
        if run.status != "complete":
            left_out[str(run.path)] = f"status {run.status}"
            continue
        name = run.manifest.get("parity")
        try:
            if not name:
                raise RunError(f"{run.path / MANIFEST} names no parity records file")
            frame = pd.DataFrame(load_complete_cells(run.path / name))
        except RunError as err:
            left_out[str(run.path)] = str(err)
            continue
        frames.append(frame.assign(run_dir=str(run.path)))
    parity = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return parity, left_out


def failed_cells(runs: list[Run], records: pd.DataFrame) -> pd.DataFrame:
    """The cells that failed runs planned but did not measure, one row each.

    A failed run's row in the leaderboard is found from its records where it
    has any (same setup hash), else from its config with setup ``failed``.
    """
    rows = []
    for run in runs:
        if run.manifest.get("kind") == "parity" or run.status != "failed":
            continue
        mine = (
            records[records.run_dir == str(run.path)] if not records.empty else records
        )
        measured = (
            set()
            if mine.empty
            else set(zip(mine.task, mine.context_length, strict=True))
        )
        fields = run.config_fields()
        fields["setup"] = mine.setup.iloc[0] if not mine.empty else "failed"
        for task, length in run.planned_cells():
            if (task, length) not in measured:
                rows.append(
                    {
                        **fields,
                        "task": task,
                        "context_length": length,
                        "run_dir": str(run.path),
                        "error": run.manifest.get("error", ""),
                    }
                )
    return pd.DataFrame(rows)
