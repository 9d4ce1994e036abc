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


def load_records(runs: list[Run]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Records of complete runs, one row per measurement, and why others were left out."""
    frames, left_out = [], {}
    for run in runs:
        if run.manifest.get("kind") == "parity":
            # read by load_parity; a parity check has no sweep records
            continue
        if run.status != "complete":
            left_out[str(run.path)] = f"status {run.status}"
            continue
        try:
            frame = run.records()
        except RunError as err:
            left_out[str(run.path)] = str(err)
            continue
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
