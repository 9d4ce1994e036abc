"""Records survive crashes: only finished cells count, damage is reported."""

import json

import pytest

from benchbench.errors import RunError
from benchbench.records import (
    Manifest,
    RecordWriter,
    load_complete_cells,
    read_manifest,
)


def test_cells_are_written_whole(tmp_path):
    path = tmp_path / "records.jsonl"
    with RecordWriter(path) as writer:
        writer.write_cell(
            "a",
            [{"metric": "nll", "value": 1.0}, {"metric": "perplexity", "value": 2.7}],
        )
        writer.write_cell("b", [{"metric": "exact_match", "value": 1.0}])
    records = load_complete_cells(path)
    assert [(r["cell_id"], r["cell_records"]) for r in records] == [
        ("a", 2),
        ("a", 2),
        ("b", 1),
    ]


def test_unfinished_cell_and_cut_line_are_left_out(tmp_path):
    path = tmp_path / "records.jsonl"
    with RecordWriter(path) as writer:
        writer.write_cell("a", [{"value": 1.0}])
        writer.write_cell("b", [{"value": 1.0}, {"value": 2.0}])
    # a crash after the first record of cell c, in the middle of its second
    lines = path.read_text().splitlines()
    first_of_c = json.dumps({"value": 3.0, "cell_id": "c", "cell_records": 2})
    path.write_text(
        "\n".join([*lines, first_of_c, '{"value": 4.0, "cell_id": "c", "ce'])
    )
    assert [r["cell_id"] for r in load_complete_cells(path)] == ["a", "b", "b"]


def test_damage_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(
        '{"cell_id": "a", "cell_records": 1}\nnot json\n{"cell_id": "b", "cell_records": 1}\n'
    )
    with pytest.raises(RunError, match="line 2"):
        load_complete_cells(path)


def test_manifest_lifecycle(tmp_path):
    manifest = Manifest(tmp_path, {"run_id": "x"})
    assert read_manifest(tmp_path)["status"] == "running"
    manifest.finish("interrupted", error="stopped")
    assert read_manifest(tmp_path)["status"] == "interrupted"
    reopened = Manifest.reopen(tmp_path)
    content = read_manifest(tmp_path)
    assert content["status"] == "running" and "error" not in content
    assert len(content["resumed_at"]) == 1
    reopened.finish("complete")
    assert read_manifest(tmp_path)["status"] == "complete"


def test_missing_or_damaged_manifest(tmp_path):
    with pytest.raises(RunError, match="not a benchbench run"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(RunError, match="damaged"):
        read_manifest(tmp_path)
