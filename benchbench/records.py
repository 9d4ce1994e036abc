"""Run directories: a manifest that says what was run, and tidy records.

``manifest.json`` holds the resolved config and the provenance of everything
that shapes the numbers (model file hash, library versions, corpus hash,
seed), plus a ``status``: ``running`` until the last record is written, then
``complete``, or ``failed`` / ``interrupted`` with the reason. Only a
``complete`` manifest vouches for its records.

``records.jsonl`` holds one JSON object per measurement, appended and flushed
to disk as each cell finishes.
"""

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd

from benchbench.errors import RunError, RunInterrupted, failure_reason

MANIFEST = "manifest.json"
PROMPTS = "prompts.jsonl"
RECORDS = "records.jsonl"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """The manifest of one run directory, rewritten atomically on each change."""

    def __init__(self, run_dir: Path, content: dict):
        self.path = run_dir / MANIFEST
        self.content = {"status": "running", "started_at": now(), **content}
        self.save()

    @classmethod
    def reopen(cls, run_dir: Path) -> "Manifest":
        """Continue the manifest of an earlier, unfinished run."""
        manifest = cls.__new__(cls)
        manifest.path = run_dir / MANIFEST
        manifest.content = read_manifest(run_dir)
        manifest.content.setdefault("resumed_at", []).append(now())
        manifest.content["status"] = "running"
        manifest.content.pop("error", None)
        manifest.content.pop("finished_at", None)
        manifest.save()
        return manifest

    def update(self, **fields) -> None:
        self.content.update(fields)
        self.save()

    def finish(self, status: str, error: str = "") -> None:
        self.content["status"] = status
        self.content["finished_at"] = now()
        if error:
            self.content["error"] = error
        self.save()

    def finish_after(self, err: BaseException) -> None:
        """Record why a run ended early: ``interrupted`` for a stop, else ``failed``."""
        if isinstance(err, KeyboardInterrupt):
            self.finish("interrupted", error="stopped by the user (Ctrl-C)")
        elif isinstance(err, RunInterrupted):
            self.finish("interrupted", error=str(err))
        else:
            self.finish("failed", error=failure_reason(err))

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(self.content, indent=2, default=str) + "\n", encoding="utf-8"
        )
        os.replace(tmp, self.path)


def read_manifest(run_dir: Path) -> dict:
    path = run_dir / MANIFEST
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(
            f"{run_dir} holds no {MANIFEST}; it is not a benchbench run"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(
            f"{path} is not valid JSON; the run directory is damaged"
        ) from None
    if not isinstance(content, dict):
        raise RunError(f"{path} is not a benchbench manifest")
    return content


class RecordWriter:
    """Appends the records of each finished cell, on disk before the next cell starts.

    A cell's records are written with one ``write`` call and each carries
    ``cell_id`` and ``cell_records`` (how many records the cell has), so a
    reader can tell a cell cut short by a crash from a finished one.
    """

    def __init__(self, path: Path):
        self.path = path
        self._handle = path.open("a", encoding="utf-8")
        self.count = 0

    def write_cell(self, cell_id: str, records: list[dict]) -> None:
        lines = [
            json.dumps({**r, "cell_id": cell_id, "cell_records": len(records)})
            for r in records
        ]
        self._handle.write("".join(line + "\n" for line in lines))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.count += len(records)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_complete_cells(path: Path) -> list[dict]:
    """Records of the cells that finished, in file order.

    A run killed mid-write can leave a final line cut short and a cell with
    fewer records than it announced; both are left out. A malformed line
    anywhere else means the file was damaged, which is an error.
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise RunError(
                f"{path} line {number} is not a JSON record; the file is damaged"
            ) from None
    for number, record in enumerate(records, start=1):
        if (
            not isinstance(record, dict)
            or "cell_id" not in record
            or not isinstance(record.get("cell_records"), int)
        ):
            raise RunError(
                f"{path} record {number} has no cell_id / cell_records; the file is damaged or foreign"
            )
    counts: dict[str, int] = {}
    for record in records:
        counts[record["cell_id"]] = counts.get(record["cell_id"], 0) + 1
    return [r for r in records if counts[r["cell_id"]] == r["cell_records"]]


def rewrite_records(path: Path, records: list[dict]) -> None:
    """Replace the records file atomically, e.g. to drop an unfinished cell."""
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def read_records(run_dir: Path) -> pd.DataFrame:
    """The records of a run directory as a DataFrame, one row per measurement."""
    return pd.DataFrame(load_complete_cells(run_dir / RECORDS))
