"""``python -m benchbench.report``: turn run directories into a publishable report.

Writes into ``output_dir``: ``index.html`` (self-contained, opens from disk
offline), ``leaderboard.md``, the figures as PNG and the tidy tables as CSV.
"""

import base64
import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import jinja2
import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from benchbench.errors import BenchError, ConfigError
from benchbench.report import figures
from benchbench.report.load import (
    failed_cells,
    find_runs,
    load_parity,
    load_records,
)
from benchbench.report.tables import (
    config_label,
    effective_lengths,
    encoding_table,
    leaderboard,
    summarize_cells,
)

CONFIG_DIR = str(Path(__file__).resolve().parent.parent.parent / "conf")


@dataclass
class ReportConfig:
    # run directories, or folders holding them (searched recursively)
    inputs: list[str] = field(default_factory=lambda: ["results"])
    output_dir: str = "reports"
    # effective context: the fraction of the short-context score to keep
    threshold: float = 0.85
    # cells with fewer samples are shown as "too few", not as scores
    min_samples: int = 3
    bootstrap_resamples: int = 1000
    seed: int = 0

    def validate(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigError("threshold", f"must lie in (0, 1], got {self.threshold}")
        if self.min_samples < 1:
            raise ConfigError(
                "min_samples", f"must be at least 1, got {self.min_samples}"
            )
        if self.bootstrap_resamples < 1:
            raise ConfigError(
                "bootstrap_resamples",
                f"must be at least 1, got {self.bootstrap_resamples}",
            )
        if not self.inputs:
            raise ConfigError(
                "inputs", "is empty; name run directories, e.g. inputs=[results]"
            )


ConfigStore.instance().store(name="report_schema", node=ReportConfig)


def build_report(cfg: ReportConfig) -> Path:
    """Write the report files; return the path of index.html."""
    runs = find_runs([Path(p) for p in cfg.inputs])
    # failed runs keep the lengths they finished; their other cells show as failed
    records, left_out = load_records(runs, include_failed=True)
    failed = failed_cells(runs, records)
    parity, parity_left_out = load_parity(runs)
    left_out.update(parity_left_out)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    summary = summarize_cells(records) if not records.empty else pd.DataFrame()
    # an effective length needs every length of the sweep: complete runs only
    finished = (
        records[records.run_status == "complete"] if not records.empty else records
    )
    effective = (
        effective_lengths(finished, cfg.threshold, cfg.bootstrap_resamples, cfg.seed)
        if not finished.empty
        else pd.DataFrame()
    )
    board = leaderboard(summary, effective, cfg.min_samples, failed)
    encodings = encoding_table(summary)

    # tidy tables for other tools
    records.to_csv(out / "records.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    effective.to_csv(out / "effective_context.csv", index=False)
    if not encodings.empty:
        encodings.to_csv(out / "encodings.csv", index=False)
    parity_table = _parity_table(parity)
    if not parity.empty:
        parity.to_csv(out / "parity.csv", index=False)
    (out / "leaderboard.md").write_text(
        (board.to_markdown() if not board.empty else "No complete run with records.")
        + "\n",
        encoding="utf-8",
    )

    sections = _figures(records, summary, out)
    encoding_figures = _encoding_figures(summary, out) if not encodings.empty else []
    runs_table = pd.DataFrame(
        [
            {
                "run": run.path.name,
                "status": run.status,
                "model sha256": run.manifest.get("model", {}).get("sha256", "")[:12],
                "started": run.manifest.get("started_at", ""),
                "cells": f"{run.manifest.get('cells_done', 0)}/{run.manifest.get('cells_planned', '?')}",
                "error": run.manifest.get("error") or "",
                "in report": "no: " + left_out[str(run.path)]
                if str(run.path) in left_out
                else "finished lengths; the rest as failed"
                if run.status == "failed"
                else "yes",
            }
            for run in runs
        ]
    )
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    ).get_template("page.html.j2")
    html = template.render(
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        runs=runs,
        records=len(records),
        threshold_pct=f"{cfg.threshold:.0%}",
        min_samples=cfg.min_samples,
        leaderboard=jinja2.utils.markupsafe.Markup(
            board.reset_index().to_html(index=False, classes="leaderboard")
        )
        if not board.empty
        else "",
        sections=sections,
        runs_table=jinja2.utils.markupsafe.Markup(
            runs_table.to_html(index=False, classes="runs")
        ),
        encodings=jinja2.utils.markupsafe.Markup(
            encodings.to_html(index=False, classes="encodings")
        )
        if not encodings.empty
        else "",
        encoding_figures=encoding_figures,
        parity=jinja2.utils.markupsafe.Markup(
            parity_table.to_html(index=False, classes="parity")
        )
        if not parity_table.empty
        else "",
    )
    page = out / "index.html"
    page.write_text(html, encoding="utf-8")
    return page


# parity record fields shown on the page, with their column titles
PARITY_COLUMNS = {
    "model": "model",
    "scaling": "scaling",
    "scaling_factor": "factor",
    "context_length": "tokens",
    "mean_abs_logprob": "mean |d log p| (nats)",
    "max_abs_logprob": "max |d log p|",
    "perplexity_llama_cpp": "perplexity llama.cpp",
    "perplexity_transformers": "perplexity transformers",
    "top1_agreement": "top-1 agreement",
    "tokenizers_identical": "same token ids",
    "within_tolerance": "within tolerance",
}


def _parity_table(parity: pd.DataFrame) -> pd.DataFrame:
    if parity.empty:
        return parity
    table = parity.sort_values(["model", "scaling", "scaling_factor", "context_length"])
    table = table[list(PARITY_COLUMNS)].rename(columns=PARITY_COLUMNS)
    for column in ("mean |d log p| (nats)", "max |d log p|", "top-1 agreement"):
        table[column] = table[column].map(lambda v: f"{v:.3f}")
    for column in ("perplexity llama.cpp", "perplexity transformers"):
        table[column] = table[column].map(lambda v: f"{v:.2f}")
    return table


def _figures(records: pd.DataFrame, summary: pd.DataFrame, out: Path) -> list[dict]:
    if records.empty:
        return []
    sections = []
    retrieval_tasks = sorted(summary[summary.metric == "accuracy"].task.unique())
    curves = [
        figures.save(
            figures.accuracy_curves(summary, task), out / f"{task}_accuracy.png"
        )
        for task in retrieval_tasks
    ]
    if curves:
        sections.append(_section("Retrieval accuracy vs context length", curves))
    heatmaps = []
    retrieval = records[records.metric == "exact_match"]
    retrieval = retrieval.assign(config=retrieval.apply(config_label, axis=1))
    for number, ((task, config), group) in enumerate(
        retrieval.groupby(["task", "config"])
    ):
        name = f"{task}_heatmap_{number:02d}_{_slug(group.scaling.iloc[0])}.png"
        heatmaps.append(
            figures.save(figures.depth_heatmap(group, task, config), out / name)
        )
    if heatmaps:
        sections.append(_section("Depth x length heatmaps", heatmaps))
    if (summary.metric == "perplexity").any():
        sections.append(
            _section(
                "Perplexity",
                [
                    figures.save(
                        figures.perplexity_curves(summary), out / "perplexity.png"
                    )
                ],
            )
        )
    return sections


def _encoding_figures(summary: pd.DataFrame, out: Path) -> list[dict]:
    """Passkey accuracy and perplexity against multiples of the trained context."""
    paths = []
    for task in sorted(summary[summary.metric == "accuracy"].task.unique()):
        paths.append(
            figures.save(
                figures.extrapolation_curves(
                    summary[summary.task == task],
                    "accuracy",
                    f"{task}: accuracy by position encoding",
                ),
                out / f"encodings_{task}.png",
            )
        )
    if (summary.metric == "perplexity").any():
        paths.append(
            figures.save(
                figures.extrapolation_curves(
                    summary, "perplexity", "perplexity by position encoding"
                ),
                out / "encodings_perplexity.png",
            )
        )
    return _section("", paths)["figures"] if paths else []


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text))


def _section(title: str, paths: list[Path]) -> dict:
    figs = [
        {
            "caption": p.stem.replace("_", " "),
            "data": base64.b64encode(p.read_bytes()).decode(),
        }
        for p in paths
    ]
    return {"title": title, "figures": figs}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="report")
def _job(cfg) -> None:
    try:
        settings: ReportConfig = OmegaConf.to_object(cfg)
        settings.validate()
        page = build_report(settings)
    except BenchError as err:
        print(f"benchbench.report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(
        f"wrote {page} (with leaderboard.md, figures and CSV tables in {page.parent})"
    )


def main() -> None:
    _job()
