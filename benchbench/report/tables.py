"""Tidy summaries of records, and the leaderboard pivoted from them."""

import math

import numpy as np
import pandas as pd

from benchbench.report.load import CONFIG_COLUMNS
from benchbench.report.metrics import effective_length_ci
from benchbench.summary import is_refused

RETRIEVAL_METRIC = "exact_match"


def config_label(row) -> str:
    factor = f" x{row['scaling_factor']:g}" if row["scaling"] != "none" else ""
    # the provenance hash keeps apart results that must not be pooled
    return f"{row['model']} / {row['backend']} / {row['encoding']} / {row['scaling']}{factor} / {row['setup'][:6]}"


def summarize_cells(records: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, task and length: the score and its sample count.

    Retrieval scores are mean exact match over samples (n = samples);
    perplexity is exp(total NLL / scored tokens) over windows (n = windows,
    with the token count alongside).
    """
    rows = []
    # provenance also covers the task's settings (template, prompt format, BOS)
    keys = CONFIG_COLUMNS + ["provenance", "task", "context_length"]
    retrieval = records[records.metric == RETRIEVAL_METRIC]
    for key, group in retrieval.groupby(keys, dropna=False):
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "metric": "accuracy",
                "value": group.value.mean(),
                "n": len(group),
                "tokens": np.nan,
                "refused": is_refused(group),
            }
        )
    nll = records[records.metric == "nll"]
    for key, group in nll.groupby(keys, dropna=False):
        refused = is_refused(group)
        tokens = 0 if refused else int(group.scored_tokens.sum())
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "metric": "perplexity",
                "value": np.nan if refused else math.exp(group.value.sum() / tokens),
                "n": len(group),
                "tokens": tokens,
                "refused": refused,
            }
        )
    summary = pd.DataFrame(rows)
    if not summary.empty:
        trained = records.groupby(
            CONFIG_COLUMNS, dropna=False
        ).trained_context_length.first()
        summary = summary.join(trained, on=CONFIG_COLUMNS)
        summary["config"] = summary.apply(config_label, axis=1)
    return summary


def effective_lengths(
    records: pd.DataFrame, threshold: float, resamples: int, seed: int
) -> pd.DataFrame:
    """Effective context length per configuration and retrieval task."""
    rows = []
    retrieval = records[records.metric == RETRIEVAL_METRIC]
    # a length the model refuses (past a learned position table) is a miss
    retrieval = retrieval.assign(value=retrieval.value.fillna(0.0))
    for key, group in retrieval.groupby(
        CONFIG_COLUMNS + ["provenance", "task"], dropna=False
    ):
        scores = {
            int(n): g.value.to_numpy() for n, g in group.groupby("context_length")
        }
        result = effective_length_ci(scores, threshold, resamples, seed)
        trained = group.trained_context_length.iloc[0]
        row = dict(zip(CONFIG_COLUMNS + ["provenance", "task"], key, strict=True))
        row.update(
            effective_length=result.value,
            low=result.low,
            high=result.high,
            at_least=result.at_least,
            trained_context_length=trained,
            lengths_tested=len(scores),
            samples=int(len(group)),
        )
        row["multiple_of_trained"] = result.value / trained if trained else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["config"] = frame.apply(config_label, axis=1)
    return frame


def format_score(row, min_samples: int) -> str:
    if bool(row.get("refused", False)):
        return "refused (past the position table)"
    if row["metric"] == "perplexity":
        # the sample here is the scored token; windows are listed alongside
        return f"{row['value']:.2f} ({int(row['tokens'])} tok, {row['n']} win)"
    if row["n"] < min_samples:
        return f"too few (n={row['n']})"
    return f"{row['value']:.2f} (n={row['n']})"


def format_effective(row) -> str:
    if math.isnan(row["effective_length"]):
        return "n/a (fails at the shortest length)"
    prefix = ">= " if row["at_least"] else ""
    text = f"{prefix}{row['effective_length']:,.0f}"
    if not math.isnan(row["low"]):
        text += f" [{row['low']:,.0f}-{row['high']:,.0f}]"
    if not math.isnan(row["multiple_of_trained"]):
        text += f" ({row['multiple_of_trained']:.2f}x trained)"
    return f"{text} n={row['samples']}"


def leaderboard(
    summary: pd.DataFrame,
    effective: pd.DataFrame,
    min_samples: int,
    failed: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per configuration; a column per task and length, then effective lengths.

    ``failed`` (from ``load.failed_cells``) adds the cells that failed runs
    planned but did not finish, shown as failed rather than left blank.
    """
    failed = failed if failed is not None else pd.DataFrame()
    if summary.empty and failed.empty:
        return pd.DataFrame()
    cells = (
        summary.assign(
            score=summary.apply(format_score, axis=1, min_samples=min_samples)
        )
        if not summary.empty
        else pd.DataFrame()
    )
    if not failed.empty:
        failed = failed.assign(
            config=failed.apply(config_label, axis=1),
            provenance="",
            score="failed (see Runs)",
        )
        if not cells.empty:
            # another run of the same configuration may have measured the cell
            scored = set(
                zip(cells.config, cells.task, cells.context_length, strict=True)
            )
            failed = failed[
                [
                    key not in scored
                    for key in zip(
                        failed.config, failed.task, failed.context_length, strict=True
                    )
                ]
            ]
        cells = pd.concat([cells, failed], ignore_index=True)
    # a task run with two settings (say two prompt formats) gets a column per
    # variant, named by its provenance, instead of pooling the two
    # a failed cell has no provenance of its own and makes no variant
    named = cells.provenance.where(cells.provenance != "")
    variants = named.groupby([cells.config, cells.task]).transform("nunique")
    cells["task_label"] = cells.task.where(
        variants <= 1, cells.task + " [" + cells.provenance.str[:6] + "]"
    )
    cells["column"] = cells.task_label + " @ " + cells.context_length.astype(str)
    order = (
        cells.sort_values(["task_label", "context_length"])
        .column.drop_duplicates()
        .tolist()
    )
    board = cells.pivot(index="config", columns="column", values="score").reindex(
        columns=order
    )
    if not effective.empty:
        labels = effective.assign(text=effective.apply(format_effective, axis=1))
        variants = labels.groupby(["config", "task"]).provenance.transform("nunique")
        task_label = labels.task.where(
            variants == 1, labels.task + " [" + labels.provenance.str[:6] + "]"
        )
        labels["column"] = "effective context (" + task_label + ")"
        board = board.join(
            labels.pivot(index="config", columns="column", values="text")
        )
    if not failed.empty:
        # a failed run has no effective length: its sweep stops short
        rows = board.index.isin(failed.config)
        for column in board.columns[board.columns.str.startswith("effective context")]:
            board.loc[rows, column] = board.loc[rows, column].fillna("n/a (run failed)")
    board = board.fillna("not measured")
    board.index.name = "configuration (model / backend / encoding / scaling / setup)"
    board.columns.name = None
    return board


def encoding_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Scores by position encoding, at multiples of each model's trained context.

    One row per configuration (encoding, scaling, model), one column per task
    and multiple; empty unless the summary holds more than one encoding.
    Accuracy is mean exact match, perplexity exp(mean NLL); a length past a
    learned position table reads "refused".
    """
    if summary.empty or summary.encoding.nunique() < 2:
        return pd.DataFrame()
    data = summary.assign(
        multiple=summary.context_length / summary.trained_context_length,
        scaling_label=summary.apply(
            lambda r: (
                r["scaling"]
                + (f" x{r['scaling_factor']:g}" if r["scaling"] != "none" else "")
            ),
            axis=1,
        ),
    )
    data["column"] = data.task + " @ " + data.multiple.map(lambda m: f"{m:g}x")
    data["text"] = data.apply(_encoding_cell, axis=1)
    order = data.sort_values(["task", "multiple"]).column.drop_duplicates().tolist()
    table = data.pivot_table(
        index=["encoding", "scaling_label", "model", "setup"],
        columns="column",
        values="text",
        aggfunc="first",
    ).reindex(columns=order)
    table.index.names = ["encoding", "scaling", "model", "setup"]
    table.columns.name = None
    return table.fillna("not measured").reset_index()


def _encoding_cell(row) -> str:
    if bool(row.get("refused", False)):
        return "refused"
    if row["metric"] == "perplexity":
        return f"{row['value']:.2f}"
    return f"{row['value']:.2f} (n={row['n']})"
