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

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """The manifest of one run directory, rewritten atomically on each change."""

    def __init__(self, run_dir: Path, content: dict):
        self.path = run_dir / MANIFEST
        self.content = {"status": "running", "started_at": now(), **content}
        self.save()

    def update(self, **fields) -> None:
        self.content.update(fields)
        self.save()

    def finish(self, status: str, error: str = "") -> None:
        self.content["status"] = status
        self.content["finished_at"] = now()
        if error:
            self.content["error"] = error
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(self.content, indent=2, default=str) + "\n", encoding="utf-8"
        )
        os.replace(tmp, self.path)


class RecordWriter:
    """Appends records as JSON lines, each on disk before the next cell starts."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = path.open("a", encoding="utf-8")
        self.count = 0

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_records(run_dir: Path) -> pd.DataFrame:
    """The records of a run directory as a DataFrame, one row per measurement."""
    path = run_dir / RECORDS
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_json(path, lines=True)
