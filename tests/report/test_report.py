"""The report page, its tables and figures, checked by content."""

import base64
import math
import re
import shutil
import subprocess

import pandas as pd
import pytest

from benchbench.report import figures
from benchbench.report.cli import ReportConfig, build_report
from benchbench.report.load import find_runs, load_records
from benchbench.report.tables import summarize_cells
from tests.report.runs import make_parity_run, make_run

GRID = {
    (1024, 0.0): [1.0, 1.0],
    (1024, 0.5): [1.0, 1.0],
    (2048, 0.0): [1.0, 0.0],
    (2048, 0.5): [1.0, 1.0],
    (4096, 0.0): [0.0, 0.0],
    (4096, 0.5): [0.0, 1.0],
}


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    make_run(root, "a-none", GRID, nll={1024: 200.0, 2048: 250.0})
    make_run(root, "b-yarn", GRID, scaling="yarn")
    make_run(root, "c-broken", GRID, status="failed")
    return root


def test_incomplete_runs_are_left_out(results):
    records, left_out = load_records(find_runs([results]))
    assert set(records.run_dir.str.rsplit("/", n=1).str[-1]) == {"a-none", "b-yarn"}
    assert list(left_out.values()) == ["status failed"]


def test_report_files_and_leaderboard(results, tmp_path):
    page = build_report(
        ReportConfig(
            inputs=[str(results)],
            output_dir=str(tmp_path / "out"),
            bootstrap_resamples=50,
        )
    )
    out = page.parent
    for name in (
        "index.html",
        "leaderboard.md",
        "records.csv",
        "summary.csv",
        "effective_context.csv",
        "passkey_accuracy.png",
        "perplexity.png",
    ):
        assert (out / name).is_file(), name
    assert len(list(out.glob("passkey_heatmap_*.png"))) == 2

    board = (out / "leaderboard.md").read_text()
    rows = [line for line in board.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2  # one per configuration, the failed run left out
    none_row = next(r for r in rows if "/ none /" in r)
    # 1024: 4 of 4; 2048: 3 of 4; 4096: 1 of 4
    assert (
        "1.00 (n=4)" in none_row
        and "0.75 (n=4)" in none_row
        and "0.25 (n=4)" in none_row
    )
    # perplexity pools NLL over tokens: exp(200 / 100)
    assert "7.39 (100 tok, 1 win)" in none_row

    effective = pd.read_csv(out / "effective_context.csv")
    # 0.85 of 1.0 is crossed between 2048 (0.75)... no: 0.75 < 0.85 already at 2048,
    # so the crossing lies between 1024 (1.0) and 2048 (0.75)
    expected = 1024 + (1.0 - 0.85) / (1.0 - 0.75) * 1024
    assert effective.effective_length.tolist() == pytest.approx([expected, expected])
    assert effective.multiple_of_trained.tolist() == pytest.approx(
        [expected / 2048] * 2
    )


def test_too_few_samples_are_not_shown_as_scores(results, tmp_path):
    page = build_report(
        ReportConfig(
            inputs=[str(results)],
            output_dir=str(tmp_path / "out"),
            min_samples=5,
            bootstrap_resamples=10,
        )
    )
    board = (page.parent / "leaderboard.md").read_text()
    assert "too few (n=4)" in board and "1.00 (n=4)" not in board


def test_heatmap_content(results):
    records, _ = load_records(find_runs([results / "a-none"]))
    fig = figures.depth_heatmap(records[records.task == "passkey"], "passkey", "tiny")
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert image.shape == (2, 3)  # depths x lengths
    assert image[0].tolist() == [1.0, 0.5, 0.0] and image[1].tolist() == [1.0, 1.0, 0.5]
    assert (
        ax.get_xlabel() == "context length (tokens)"
        and ax.get_ylabel() == "needle depth"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1,024", "2,048", "4,096"]
    assert len(ax.texts) == 6  # one annotation per cell
    # the trained context (2048) is marked between the 2,048 and 4,096 columns
    (line,) = ax.lines
    assert line.get_xdata()[0] == pytest.approx(1.5)


def test_curves_content(results):
    records, _ = load_records(find_runs([results]))
    summary = summarize_cells(records)
    ax = figures.accuracy_curves(summary, "passkey").axes[0]
    curves = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(curves) == 2
    assert list(curves[0].get_ydata()) == [1.0, 0.75, 0.25]
    assert ax.get_xscale() == "log" and "accuracy" in ax.get_ylabel()
    assert any("trained context" in (line.get_label() or "") for line in ax.lines)
    ppl_ax = figures.perplexity_curves(summary).axes[0]
    assert ppl_ax.get_yscale() == "log"


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="needs Debian's chromium (scripts/setup.sh --test)",
)
def test_page_renders_in_headless_chromium(results, tmp_path):
    page = build_report(
        ReportConfig(
            inputs=[str(results)],
            output_dir=str(tmp_path / "out"),
            bootstrap_resamples=20,
        )
    )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-component-update",
    ]
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    # the leaderboard's rows are the configurations of the complete runs
    records, _ = load_records(find_runs([results]))
    expected = sorted(summarize_cells(records).config.unique())
    table = dom.split('class="dataframe leaderboard"')[1].split("</table>")[0]
    body_rows = re.findall(r"<tr>\s*<td>(.*?)</td>", table.split("<tbody>")[1])
    assert sorted(body_rows) == expected and len(expected) == 2
    # figures are embedded PNGs: curves, two heatmaps and perplexity
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', dom)
    assert len(images) == 4
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "http://" not in dom.split("<body>")[1] and "https://" not in dom

    shot = tmp_path / "page.png"
    subprocess.run(
        [
            "chromium",
            *flags,
            "--window-size=1300,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = plt_read(shot)
    assert pixels.shape[0] == 2400 and pixels.shape[1] == 1300
    assert pixels.std() > 0.05  # not a blank page


def plt_read(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_parity_checks_get_their_own_table(results, tmp_path):
    rows = [
        {"context_length": 1024, "mean_abs_logprob": 0.0551, "top1_agreement": 0.9697},
        {"context_length": 4096, "mean_abs_logprob": 0.0533, "top1_agreement": 0.9683},
    ]
    make_parity_run(results, "d-parity", rows)
    make_parity_run(results, "e-parity-broken", rows[:1], status="failed")
    # a parity check is no sweep: the leaderboard's records are unchanged
    records, _ = load_records(find_runs([results]))
    assert "d-parity" not in set(records.run_dir.str.rsplit("/", n=1).str[-1])

    page = build_report(
        ReportConfig(
            inputs=[str(results)],
            output_dir=str(tmp_path / "out"),
            bootstrap_resamples=50,
        )
    )
    html = page.read_text()
    assert "Backend parity: llama.cpp against transformers" in html
    section = html.split("Backend parity")[1].split("<h2>")[0]
    cells = re.findall(r"<td>([^<]*)</td>", section)
    # two rows of eleven columns, in length order, rounded for reading
    assert len(cells) == 22
    assert cells[3::11] == ["1024", "4096"]
    assert cells[4::11] == ["0.055", "0.053"]
    assert cells[8::11] == ["0.970", "0.968"]
    assert len(pd.read_csv(page.parent / "parity.csv")) == 2
    runs = html.split("<h2>Runs</h2>")[1]
    assert re.search(
        r"e-parity-broken</td>(\s*<td>[^<]*</td>){5}\s*<td>no: status failed</td>", runs
    )


def test_a_failed_run_shows_what_it_finished_and_the_rest_as_failed(results, tmp_path):
    """A run that ran out of memory partway through 2048 tokens: 1024 done, 2048 half done."""
    config = {
        "model": {"name": "tiny", "encoding": "rope"},
        "backend": {"name": "llama_cpp"},
        "scaling": {"method": "linear", "factor": 2.0},
        "task": {"passkey": {"digits": 5}, "needle": None, "perplexity": None},
        "sweep": {
            "context_lengths": [1024, 2048, 4096],
            "depths": [0.0, 0.5],
            "samples": 2,
        },
    }
    partial = {(1024, 0.0): [1.0, 1.0], (1024, 0.5): [1.0, 0.0], (2048, 0.0): [1.0]}
    make_run(
        results, "d-oom", partial, scaling="linear", status="failed", config=config
    )

    records, _ = load_records(find_runs([results]), include_failed=True)
    kept = records[records.run_dir.str.endswith("d-oom")]
    # the half-measured length is dropped whole, not shown as a score of 1 sample
    assert sorted(set(kept.context_length)) == [1024]

    page = build_report(
        ReportConfig(
            inputs=[str(results)],
            output_dir=str(tmp_path / "out"),
            bootstrap_resamples=50,
        )
    )
    board = (page.parent / "leaderboard.md").read_text()
    header = [c.strip() for c in board.splitlines()[0].split("|")[2:-1]]
    (row,) = [line for line in board.splitlines() if "/ linear x2 /" in line]
    cells = dict(zip(header, [c.strip() for c in row.split("|")[2:-1]], strict=True))
    assert cells["passkey @ 1024"] == "0.75 (n=4)"
    assert cells["passkey @ 2048"] == cells["passkey @ 4096"] == "failed (see Runs)"
    assert cells["perplexity @ 1024"] == "not measured"
    assert cells["effective context (passkey)"] == "n/a (run failed)"
    # the other runs' rows are as before
    (none_row,) = [line for line in board.splitlines() if "/ none /" in line]
    assert "failed" not in none_row
    assert "finished lengths; the rest as failed" in page.read_text()


def test_encodings_are_compared_at_multiples_of_the_trained_context(tmp_path):
    root = tmp_path / "results"
    lengths = {1024: 200.0, 2048: 250.0, 4096: 300.0}
    make_run(root, "alibi", GRID, nll=lengths, encoding="alibi", model_sha="a1" * 32)
    # a learned table of 2048 rows: 4096 tokens are refused
    make_run(
        root,
        "learned",
        GRID,
        nll=lengths,
        encoding="learned",
        model_sha="1e" * 32,
        refused_from=2049,
    )
    page = build_report(
        ReportConfig(
            inputs=[str(root)], output_dir=str(tmp_path / "out"), bootstrap_resamples=20
        )
    )
    out = page.parent
    table = pd.read_csv(out / "encodings.csv", dtype=str).set_index("encoding")
    # trained context 2048 (see runs.py): 1024 is 0.5x, 4096 is 2x
    assert list(table.columns[3:]) == [
        "passkey @ 0.5x",
        "passkey @ 1x",
        "passkey @ 2x",
        "perplexity @ 0.5x",
        "perplexity @ 1x",
        "perplexity @ 2x",
    ]
    assert table.loc["learned", "passkey @ 2x"] == "refused"
    assert table.loc["learned", "perplexity @ 2x"] == "refused"
    assert table.loc["alibi", "passkey @ 2x"] == "0.25 (n=4)"
    assert table.loc["learned", "passkey @ 1x"] == "0.75 (n=4)"
    # exp(250 nats / 100 tokens)
    assert table.loc["learned", "perplexity @ 1x"] == f"{math.exp(2.5):.2f}"
    assert table.loc["alibi", "perplexity @ 2x"] == f"{math.exp(3.0):.2f}"

    board = (out / "leaderboard.md").read_text()
    assert board.count("refused (past the position table)") == 2
    # a refused length is a miss: the learned run's retrieval ends at 1x-2x
    effective = pd.read_csv(out / "effective_context.csv").set_index("encoding")
    assert effective.loc["learned", "lengths_tested"] == 3
    assert effective.loc["learned", "effective_length"] < 4096
    for name in ("encodings_passkey.png", "encodings_perplexity.png"):
        assert (out / name).is_file()
    html = page.read_text()
    assert "Position encodings" in html and "refused" in html
