"""The task x length table printed at the end of a run."""

import math

import pandas as pd


def is_refused(group: pd.DataFrame) -> bool:
    """Whether the model refused every record of ``group`` (a length past its positions)."""
    return "refused" in group and bool(group.refused.notna().all())


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """One row per task and metric, one column per context length.

    Retrieval tasks show the mean exact match with its sample count; perplexity
    is exp(total NLL / total scored tokens) over the windows of that length. A
    length the model cannot represent reads "refused".
    """
    if records.empty:
        return pd.DataFrame()
    rows = []
    retrieval = records[records.metric == "exact_match"]
    for (task, length), group in retrieval.groupby(["task", "context_length"]):
        if is_refused(group):
            rows.append((task, "exact_match", length, "refused"))
            continue
        rows.append(
            (task, "exact_match", length, f"{group.value.mean():.2f} (n={len(group)})")
        )
    nll = records[records.metric == "nll"]
    for (task, length), group in nll.groupby(["task", "context_length"]):
        if is_refused(group):
            rows.append((task, "perplexity", length, "refused"))
            continue
        tokens = int(group.scored_tokens.sum())
        rows.append(
            (
                task,
                "perplexity",
                length,
                f"{math.exp(group.value.sum() / tokens):.2f} ({tokens} tok)",
            )
        )

    table = pd.DataFrame(rows, columns=["task", "metric", "context_length", "cell"])
    table = table.pivot(
        index=["task", "metric"], columns="context_length", values="cell"
    )
    return table.fillna("-")
