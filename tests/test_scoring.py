"""How retrieval answers are judged."""

from pathlib import Path

import pytest

from benchbench.config import NeedleConfig, PasskeyConfig
from benchbench.tasks.needle import NeedleTask
from benchbench.tasks.passkey import PasskeyTask

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("output", "correct"),
    [
        (" 46208.", True),
        (" 46208. The pass key", True),
        ("46208", True),
        (" is 46208.", True),
        (" 4620", False),
        (" 462081", False),
        (" 12345 46208", False),  # only the first number counts
        (" forty-six thousand", False),
        ("", False),
    ],
)
def test_passkey_exact_match(output, correct):
    task = PasskeyTask(PasskeyConfig(), seed=0, root=ROOT)
    assert task.is_correct(output, {"passkey": "46208"}) is correct


@pytest.mark.parametrize(
    ("output", "correct"),
    [
        ('orchard".', True),
        ("Orchard", True),
        ('orchard.".', True),
        (' orchard"', True),
        ('orchards"', False),
        ('the orchard"', False),
        ('g".', False),
        ("", False),
    ],
)
def test_needle_exact_match(output, correct):
    task = NeedleTask(NeedleConfig(), seed=0, root=ROOT)
    assert task.is_correct(output, {"key": "blue door", "value": "orchard"}) is correct
