"""``python -m benchbench.regress baseline=DIR candidate=DIR``: a gate for nightly runs.

Compares two sets of runs on the cells they share: the same provenance (model
file, backend version, corpus, prompt template and format), scaling, task,
context_length, depth, sample and seed. A retrieval cell that flips from
right to wrong is a regression; a perplexity window that rises by more than
the relative tolerance is one too. Exit codes: 0 when nothing exceeds its
tolerance, 1 when something does, 2 when the inputs cannot be compared (no
complete runs, other model files, no shared cells).
"""

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from benchbench.errors import BenchError, ConfigError
from benchbench.report.load import find_runs, load_records

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
EXIT_OK, EXIT_REGRESSION, EXIT_INCOMPARABLE = 0, 1, 2

CELL_KEY = [
    # provenance covers model file, backend version, corpus and prompt settings
    "provenance",
    "model_sha256",
    "backend",
    "scaling",
    "scaling_factor",
    "task",
    "context_length",
    "depth",
    "sample",
    "seed",
    "metric",
]


@dataclass
class Tolerances:
    # largest allowed drop of a retrieval cell's exact match (0: any flip counts)
    exact_match: float = 0.0
    # largest allowed relative rise of a perplexity window (0.02 = 2%)
    perplexity: float = 0.02


@dataclass
class RegressConfig:
    baseline: str = MISSING
    candidate: str = MISSING
    tolerance: Tolerances = field(default_factory=Tolerances)

    def validate(self) -> None:
        for key in ("exact_match", "perplexity"):
            if getattr(self.tolerance, key) < 0:
                raise ConfigError(
                    f"tolerance.{key}",
                    f"must be >= 0, got {getattr(self.tolerance, key)}",
                )


ConfigStore.instance().store(name="regress_schema", node=RegressConfig)


class Incomparable(BenchError):
    """The two sets of runs share nothing that could be compared."""


def _cells(path: str, side: str) -> pd.DataFrame:
    records, _ = load_records(find_runs([Path(path)]))
    if records.empty:
        raise Incomparable(f"{side}: no complete run with records under '{path}'")
    records = records[records.metric.isin(["exact_match", "perplexity"])].copy()
    records["depth"] = records["depth"].fillna(-1.0)  # perplexity has no depth
    if "refused" in records:
        # a length the model refuses is a miss, and an unbounded perplexity: a
        # new refusal is a regression, one on both sides is no change
        refused = records.refused.notna()
        worst = records.metric.map({"exact_match": 0.0, "perplexity": math.inf})
        records["value"] = records.value.where(~refused, worst)
    return records.groupby(CELL_KEY, as_index=False).value.mean()


def compare(cfg: RegressConfig) -> tuple[pd.DataFrame, int]:
    """Per-cell changes, and how many cells both sides share."""
    base, cand = _cells(cfg.baseline, "baseline"), _cells(cfg.candidate, "candidate")
    if not set(base.model_sha256) & set(cand.model_sha256):
        raise Incomparable(
            "baseline and candidate were measured on different model files (sha256 differs)"
        )
    shared = base.merge(cand, on=CELL_KEY, suffixes=("_baseline", "_candidate"))
    if shared.empty:
        raise Incomparable(
            "baseline and candidate share no cell (same provenance, task, length, depth, sample, seed, "
            "scaling); a new backend version, corpus or prompt template also makes runs incomparable"
        )

    change = shared.value_candidate - shared.value_baseline
    retrieval = shared.metric == "exact_match"
    relative = shared.value_candidate / shared.value_baseline - 1.0
    tol = cfg.tolerance
    shared["change"] = change.where(retrieval, relative)
    worse = (retrieval & (change < -tol.exact_match)) | (
        ~retrieval & (relative > tol.perplexity)
    )
    better = (retrieval & (change > tol.exact_match)) | (
        ~retrieval & (relative < -tol.perplexity)
    )
    shared["verdict"] = "same"
    shared.loc[worse, "verdict"] = "regression"
    shared.loc[better, "verdict"] = "improvement"
    return shared, len(shared)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="regress")
def _job(cfg) -> None:
    try:
        try:
            settings: RegressConfig = OmegaConf.to_object(cfg)
        except MissingMandatoryValue as err:
            raise ConfigError(
                err.full_key, f"is not set; give {err.full_key}=DIR"
            ) from None
        settings.validate()
        cells, shared = compare(settings)
    except Incomparable as err:
        print(f"benchbench.regress: cannot compare: {err}", file=sys.stderr)
        sys.exit(EXIT_INCOMPARABLE)
    except BenchError as err:
        print(f"benchbench.regress: error: {err}", file=sys.stderr)
        sys.exit(EXIT_INCOMPARABLE)

    changed = cells[cells.verdict != "same"].sort_values(
        ["verdict", "task", "context_length", "depth"]
    )
    columns = [
        "verdict",
        "task",
        "scaling",
        "context_length",
        "depth",
        "sample",
        "metric",
    ]
    columns += ["value_baseline", "value_candidate", "change"]
    if not changed.empty:
        print(changed[columns].to_string(index=False))
    regressions = int((cells.verdict == "regression").sum())
    improvements = int((cells.verdict == "improvement").sum())
    print(
        f"{shared} shared cells: {regressions} regressions, {improvements} improvements beyond tolerance"
    )
    sys.exit(EXIT_REGRESSION if regressions else EXIT_OK)


def main() -> None:
    _job()


if __name__ == "__main__":
    main()
