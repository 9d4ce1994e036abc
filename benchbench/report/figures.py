"""The report's figures, drawn with matplotlib and saved as PNG files."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TRAINED_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.2}


def _mark_trained(ax, trained: float, lengths) -> None:
    if not trained:
        return
    if min(lengths) <= trained <= max(lengths) * 1.25:
        ax.axvline(
            trained, label=f"trained context ({int(trained):,})", **TRAINED_STYLE
        )
    else:
        # a line far outside the tested range would squash the curves
        side = "beyond" if trained > max(lengths) else "below"
        note = f"trained context {int(trained):,}: {side} the tested lengths"
        ax.text(
            0.99,
            0.02,
            note,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.35",
        )


def _length_axis(ax, lengths) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths)
    ax.set_xticklabels([f"{n:,}" for n in lengths], rotation=30)
    ax.set_xlabel("context length (tokens)")


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curves(data: pd.DataFrame):
    """A figure with one value-vs-length line per configuration, trained context marked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for config, group in data.groupby("config"):
        group = group.sort_values("context_length")
        ax.plot(group.context_length, group.value, marker="o", label=config)
    lengths = sorted(data.context_length.unique())
    _length_axis(ax, lengths)
    _mark_trained(ax, data.trained_context_length.max(), lengths)
    return fig, ax


def accuracy_curves(summary: pd.DataFrame, task: str):
    """Exact-match accuracy against context length, one line per configuration."""
    fig, ax = _curves(summary[(summary.task == task) & (summary.metric == "accuracy")])
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel(f"{task} accuracy (exact match)")
    ax.set_title(f"{task}: accuracy vs context length")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def perplexity_curves(summary: pd.DataFrame):
    """Perplexity against context length on log axes, one line per configuration."""
    fig, ax = _curves(summary[summary.metric == "perplexity"])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title("perplexity vs context length")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def depth_heatmap(records: pd.DataFrame, task: str, config: str):
    """Accuracy on a depth x length grid: green retrieved, red missed."""
    grid = records.pivot_table(
        index="depth", columns="context_length", values="value", aggfunc="mean"
    )
    counts = records.pivot_table(
        index="depth", columns="context_length", values="value", aggfunc="count"
    )
    refused = (
        records.assign(refused=records.refused.notna()).pivot_table(
            index="depth", columns="context_length", values="refused", aggfunc="all"
        )
        if "refused" in records
        else grid.isna() & False
    )
    lengths = list(grid.columns)
    fig, ax = plt.subplots(
        figsize=(1.2 + 1.1 * len(lengths), 1.2 + 0.55 * len(grid.index))
    )
    image = ax.imshow(grid.to_numpy(), cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        if not np.isnan(value):
            ax.text(
                j,
                i,
                f"{value:.2f}\nn={int(counts.iat[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
            )
        elif refused.iat[i, j]:
            ax.text(j, i, "refused", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(lengths)))
    ax.set_xticklabels([f"{n:,}" for n in lengths], rotation=30)
    ax.set_yticks(range(len(grid.index)))
    ax.set_yticklabels([f"{d:.0%}" for d in grid.index])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth")
    trained = records.trained_context_length.max()
    if trained and lengths[0] <= trained <= lengths[-1]:
        # a line between the last length within the trained context and the next
        inside = sum(n <= trained for n in lengths)
        ax.axvline(
            inside - 0.5,
            label="trained context",
            color="black",
            linestyle="--",
            linewidth=1.5,
        )
        ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 1.18))
    ax.set_title(f"{task}\n{config}", fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.05, label="accuracy")
    fig.tight_layout()
    return fig


def extrapolation_curves(summary: pd.DataFrame, metric: str, title: str):
    """``metric`` against context length as a multiple of each model's trained context.

    Puts models trained at different lengths on one axis; a refused length
    (past a learned position table) leaves a gap, and is named in the legend.
    Up to 20 configurations get distinct colours; the legend sits outside.
    """
    data = summary[summary.metric == metric].assign(
        multiple=lambda d: d.context_length / d.trained_context_length
    )
    fig, ax = plt.subplots(figsize=(10, 4.6))
    colours = plt.get_cmap("tab20").colors
    for number, (config, group) in enumerate(data.groupby("config")):
        group = group.sort_values("multiple")
        label = config + (" (refused past its table)" if group.refused.any() else "")
        ax.plot(
            group.multiple,
            group.value,
            marker="os^D"[number // len(colours) % 4],
            color=colours[number % len(colours)],
            label=label,
        )
    multiples = sorted(data.multiple.unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(multiples)
    ax.set_xticklabels([f"{m:g}x" for m in multiples])
    ax.set_xlabel("context length / trained context length")
    ax.axvline(1.0, **TRAINED_STYLE)
    if metric == "perplexity":
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_ylabel("perplexity (log scale)")
    else:
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"{metric} (exact match)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
