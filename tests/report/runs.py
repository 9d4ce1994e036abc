"""Run directories with made-up records, written the way the runner writes them."""

from pathlib import Path

from benchbench.records import PROMPTS, RECORDS, Manifest, RecordWriter

MODEL_SHA = "ab" * 32


def make_run(
    root: Path,
    name: str,
    passkey: dict[tuple[int, float], list[float]],
    nll: dict[int, float] | None = None,
    scaling: str = "none",
    model_sha: str = MODEL_SHA,
    status: str = "complete",
    config: dict | None = None,
    encoding: str = "rope",
    refused_from: int | None = None,
) -> Path:
    """A run with passkey scores per (length, depth) and perplexity NLL per length.

    Each passkey score list holds one value per sample; each NLL covers 100 tokens.
    Lengths from ``refused_from`` on are refused, as a learned position table
    refuses them: no value, and the reason.
    """

    def refusal(length: int) -> dict:
        if refused_from is None or length < refused_from:
            return {}
        return {"value": None, "refused": f"past the table of {refused_from - 1}"}

    run_dir = root / name
    run_dir.mkdir(parents=True)
    manifest = Manifest(
        run_dir,
        {
            "run_id": name,
            "records": RECORDS,
            "prompts": PROMPTS,
            "model": {"sha256": model_sha, "trained_context_length": 2048},
            **({"config": config} if config else {}),
        },
    )
    common = {
        "model": "tiny",
        "model_sha256": model_sha,
        "backend": "llama_cpp",
        "backend_version": "0.3.36",
        "encoding": encoding,
        "scaling": scaling,
        "scaling_factor": 1.0 if scaling == "none" else 2.0,
        "seed": 1,
        "corpus_sha256": "cd" * 32,
        "provenance": "p" * 16,
    }
    with RecordWriter(run_dir / RECORDS) as writer:
        for (length, depth), values in passkey.items():
            for sample, value in enumerate(values):
                record = {
                    **common,
                    "task": "passkey",
                    "context_length": length,
                    "depth": depth,
                    "sample": sample,
                    "metric": "exact_match",
                    "value": value,
                    **refusal(length),
                }
                writer.write_cell(f"passkey/{length}/{depth}/{sample}", [record])
        for length, total in (nll or {}).items():
            base = {
                **common,
                "task": "perplexity",
                "context_length": length,
                "depth": None,
                "sample": 0,
                "scored_tokens": 100,
                "provenance": "q" * 16,
            }
            writer.write_cell(
                f"perplexity/{length}/-/0",
                [
                    {**base, "metric": "nll", "value": total, **refusal(length)},
                    {**base, "metric": "perplexity", "value": 2.0, **refusal(length)},
                ],
            )
    manifest.finish(status)
    return run_dir


def make_parity_run(root: Path, name: str, rows: list[dict], status="complete") -> Path:
    """A parity check as ``benchbench.parity`` writes it, one record per row."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    manifest = Manifest(
        run_dir, {"kind": "parity", "run_id": name, "parity": "parity.jsonl"}
    )
    with RecordWriter(run_dir / "parity.jsonl") as writer:
        for row in rows:
            record = {
                "model": "tiny",
                "scaling": "none",
                "scaling_factor": 1.0,
                "max_abs_logprob": 0.5,
                "perplexity_llama_cpp": 10.0,
                "perplexity_transformers": 10.1,
                "tokenizers_identical": True,
                "within_tolerance": True,
                **row,
            }
            writer.write_cell(f"parity/{record['context_length']}", [record])
    manifest.finish(status)
    return run_dir
