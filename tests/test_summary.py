"""The end-of-run table aggregates records the way the README says."""

import math

import pandas as pd

from benchbench.summary import summarize


def test_table_aggregates_records():
    records = pd.DataFrame(
        [
            # passkey at 1024: 2 of 3 right
            {
                "task": "passkey",
                "context_length": 1024,
                "metric": "exact_match",
                "value": 1.0,
            },
            {
                "task": "passkey",
                "context_length": 1024,
                "metric": "exact_match",
                "value": 0.0,
            },
            {
                "task": "passkey",
                "context_length": 1024,
                "metric": "exact_match",
                "value": 1.0,
            },
            {
                "task": "passkey",
                "context_length": 2048,
                "metric": "exact_match",
                "value": 0.0,
            },
            # perplexity pools NLL over windows: exp((100 + 300) / (100 + 100))
            {
                "task": "perplexity",
                "context_length": 1024,
                "metric": "nll",
                "value": 100.0,
                "scored_tokens": 100,
            },
            {
                "task": "perplexity",
                "context_length": 1024,
                "metric": "nll",
                "value": 300.0,
                "scored_tokens": 100,
            },
            {
                "task": "perplexity",
                "context_length": 1024,
                "metric": "perplexity",
                "value": 99.0,
                "scored_tokens": 100,
            },
        ]
    )
    table = summarize(records)
    assert table.loc[("passkey", "exact_match"), 1024] == "0.67 (n=3)"
    assert table.loc[("passkey", "exact_match"), 2048] == "0.00 (n=1)"
    assert (
        table.loc[("perplexity", "perplexity"), 1024]
        == f"{math.exp(2.0):.2f} (200 tok)"
    )
    # a length a task did not measure shows as a dash, not as a score
    assert table.loc[("perplexity", "perplexity"), 2048] == "-"


def test_no_records_gives_an_empty_table():
    assert summarize(pd.DataFrame()).empty
