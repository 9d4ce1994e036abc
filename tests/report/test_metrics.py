"""Effective context length against hand-worked values."""

import math

import numpy as np
import pytest

from benchbench.report.metrics import effective_length, effective_length_ci


def test_crossing_is_interpolated_between_lengths():
    # level = 0.85 * 1.0; it is crossed between 2048 (1.0) and 4096 (0.5):
    # 2048 + (1.0 - 0.85) / (1.0 - 0.5) * 2048 = 2662.4
    value, at_least = effective_length(
        [1024, 2048, 4096, 8192], [1.0, 1.0, 0.5, 0.0], 0.85
    )
    assert value == pytest.approx(2662.4)
    assert not at_least


def test_threshold_is_relative_to_the_short_context_score():
    # a weak model at 0.4 keeps 85% of that (0.34) until it drops to 0.2
    value, _ = effective_length([1024, 2048, 4096], [0.4, 0.4, 0.2], 0.85)
    assert value == pytest.approx(2048 + (0.4 - 0.34) / (0.4 - 0.2) * 2048)


def test_never_dropping_reports_at_least_the_longest():
    assert effective_length([1024, 2048], [1.0, 0.9], 0.85) == (2048.0, True)


def test_zero_short_context_score_is_undefined():
    value, _ = effective_length([1024, 2048], [0.0, 0.0], 0.85)
    assert math.isnan(value)


def test_bootstrap_interval_brackets_the_estimate():
    scores = {
        1024: np.ones(10),
        2048: np.array([1.0] * 7 + [0.0] * 3),
        4096: np.zeros(10),
    }
    result = effective_length_ci(scores, 0.85, resamples=500, seed=3)
    assert result.low <= result.value <= result.high
    assert 1024 <= result.low and result.high <= 4096
    # all-certain scores leave no uncertainty
    fixed = effective_length_ci(
        {1024: np.ones(5), 2048: np.zeros(5)}, 0.85, resamples=50
    )
    assert fixed.low == fixed.high == fixed.value
