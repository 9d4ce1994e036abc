"""``python -m benchbench.parity``: do llama.cpp and transformers compute the same model?

Both backends load the same weights (llama.cpp runs the GGUF's quantized
kernels, transformers a dequantized float copy) with the same scaling, score
the same token ids, and are compared per token::

    python -m benchbench.parity scaling=yarn scaling.factor=2 'context_lengths=[1024,10240]'

First the tokenizers: both must turn the corpus into identical ids, and a
scored sequence must hold exactly one BOS (at the front, where the model's
tokenizer asks for one). Then, at each length, the first ``context_length``
tokens of the corpus are scored by both, giving per-token log-probability
differences, each backend's perplexity, and top-1 agreement (how often both
rank the same next token first). Each length is one record; a value outside
its ``tolerance`` marks the record failed, and the command exits 1.
"""

import datetime as dt
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.core.config_store import ConfigStore

from benchbench.backends import open_backend
from benchbench.cli import check_writable, compose_or_fail, fail
from benchbench.config import BackendConfig, CorpusConfig, ModelConfig, ScalingConfig
from benchbench.corpus import load_corpus
from benchbench.errors import BenchError, ConfigError
from benchbench.models import model_fingerprint, read_model_info, resolve_model_path
from benchbench.records import Manifest, RecordWriter
from benchbench.runner import check_model_matches, check_scaling, versions
from benchbench.scaling import describe

log = logging.getLogger(__name__)

PARITY_RECORDS = "parity.jsonl"
EXIT_OK, EXIT_OUTSIDE_TOLERANCE, EXIT_BAD_INPUT = 0, 1, 2


@dataclass
class ParityTolerance:
    # mean |log p_llama.cpp - log p_transformers| over the scored tokens (nats)
    mean_abs_logprob: float = 0.1
    # relative difference of the two perplexities
    perplexity: float = 0.02
    # smallest share of positions where both rank the same token first
    top1_agreement: float = 0.93


@dataclass
class ParityCommand:
    model: ModelConfig = field(default_factory=ModelConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    llama_cpp: BackendConfig = field(default_factory=BackendConfig)
    transformers: BackendConfig = field(
        default_factory=lambda: BackendConfig(name="transformers")
    )
    context_lengths: list[int] = field(default_factory=lambda: [1024])
    tolerance: ParityTolerance = field(default_factory=ParityTolerance)
    results_dir: str = "results"

    def validate(self) -> None:
        for part in (self.model, self.scaling, self.corpus):
            part.validate()
        for key in ("llama_cpp", "transformers"):
            backend = getattr(self, key)
            backend.validate()
            if backend.name != key:
                raise ConfigError(f"{key}.name", f"must be {key}, got '{backend.name}'")
        lengths = list(self.context_lengths)
        if not lengths or any(n < 2 for n in lengths):
            raise ConfigError(
                "context_lengths", f"give lengths of at least 2 tokens, got {lengths}"
            )
        if len(set(lengths)) != len(lengths):
            raise ConfigError("context_lengths", f"has duplicates: {lengths}")
        if not self.results_dir.strip():
            raise ConfigError(
                "results_dir", "is empty; name a folder, e.g. results_dir=results"
            )
        for key, value in vars(self.tolerance).items():
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"tolerance.{key}", f"must be >= 0, got {value}")
        if self.tolerance.top1_agreement > 1:
            raise ConfigError(
                "tolerance.top1_agreement",
                f"is a share in [0, 1], got {self.tolerance.top1_agreement}",
            )


ConfigStore.instance().store(name="parity_schema", node=ParityCommand)


def compare_tokenizers(a, b, text: str) -> dict:
    """Whether two backends turn ``text`` into the same ids and agree on BOS."""
    ids_a, ids_b = a.tokenize(text), b.tokenize(text)
    first = next(
        (i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y),
        None if len(ids_a) == len(ids_b) else min(len(ids_a), len(ids_b)),
    )
    return {
        "tokens": len(ids_a),
        "identical": first is None,
        "first_difference": first,
        "bos_token_id": [a.bos_token_id, b.bos_token_id],
        "adds_bos": [a.adds_bos, b.adds_bos],
        "ids": ids_a,
    }


def scored_sequence(ids: list[int], bos: int | None, length: int) -> list[int]:
    """The first ``length`` tokens to score: one BOS where the model has one, then text."""
    head = [bos] if bos is not None else []
    sequence = head + list(ids[: length - len(head)])
    if bos is not None and sequence.count(bos) != 1:
        raise BenchError(
            f"the scored sequence holds {sequence.count(bos)} BOS tokens, not one; "
            "the corpus contains the BOS token's text"
        )
    return sequence


def compare_scores(a, b) -> dict:
    """Per-token agreement of two backends' ``TokenScores`` for the same ids."""
    difference = a.logprobs - b.logprobs
    nll_a, nll_b = -a.logprobs.mean(), -b.logprobs.mean()
    return {
        "scored_tokens": len(difference),
        "mean_abs_logprob": float(np.abs(difference).mean()),
        "max_abs_logprob": float(np.abs(difference).max()),
        "mean_logprob_difference": float(difference.mean()),
        "perplexity_llama_cpp": float(math.exp(nll_a)),
        "perplexity_transformers": float(math.exp(nll_b)),
        "perplexity": float(abs(math.exp(nll_a - nll_b) - 1.0)),
        "top1_agreement": float((a.argmax == b.argmax).mean()),
    }


def within(tolerance: ParityTolerance, result: dict) -> list[str]:
    """The tolerances ``result`` breaks, by name."""
    broken = []
    if result["mean_abs_logprob"] > tolerance.mean_abs_logprob:
        broken.append("mean_abs_logprob")
    if result["perplexity"] > tolerance.perplexity:
        broken.append("perplexity")
    if result["top1_agreement"] < tolerance.top1_agreement:
        broken.append("top1_agreement")
    return broken


def run_parity(cmd: ParityCommand, run_dir: Path) -> pd.DataFrame:
    """Compare the backends at every length; write and return one record per length."""
    model_path = resolve_model_path(cmd.model, "transformers")
    if not model_path.is_file():
        raise ConfigError(
            "model.path",
            "parity needs one GGUF file that both backends load; a checkpoint folder runs only on transformers",
        )
    rope, _ = read_model_info(model_path)
    check_model_matches(rope, cmd.model.trained_context_length, cmd.model.rope_theta)
    for key in ("llama_cpp", "transformers"):
        try:
            check_scaling(_BackendView(getattr(cmd, key), cmd.scaling), rope)
        except ConfigError as err:
            if key == "llama_cpp" and err.key == "scaling.method":
                raise ConfigError(
                    "scaling.method",
                    f"parity needs both backends, and llama.cpp cannot apply '{cmd.scaling.method}'; "
                    "compare a method both can run (none, linear, ntk, yarn)",
                ) from None
            raise
    corpus = load_corpus(cmd.corpus)
    longest = max(cmd.context_lengths)

    run_dir.mkdir(parents=True, exist_ok=False)
    manifest = Manifest(
        run_dir,
        {
            "kind": "parity",
            "run_id": run_dir.name,
            "command": [
                Path(sys.executable).name,
                "-m",
                "benchbench.parity",
                *sys.argv[1:],
            ],
            "versions": versions(),
            "parity": PARITY_RECORDS,
        },
    )
    try:
        records = _measure(cmd, run_dir, manifest, model_path, rope, corpus, longest)
    except (Exception, KeyboardInterrupt) as err:
        manifest.finish_after(err)
        raise
    manifest.finish("complete")
    return records


@dataclass
class _BackendView:
    """The ``backend`` / ``scaling`` pair that ``check_scaling`` reads."""

    backend: BackendConfig
    scaling: ScalingConfig


def _measure(cmd, run_dir, manifest, model_path, rope, corpus, longest) -> pd.DataFrame:
    log.info("loading %s into llama.cpp and transformers", model_path.name)
    llama = open_backend(model_path, rope, cmd.llama_cpp, cmd.scaling, longest)
    try:
        hf = open_backend(model_path, rope, cmd.transformers, cmd.scaling, longest)
    except BaseException:
        llama.close()
        raise
    try:
        tokenizers = compare_tokenizers(llama, hf, corpus.text)
        ids = tokenizers.pop("ids")
        if len(ids) + 1 < longest:
            raise ConfigError(
                "context_lengths",
                f"{longest} tokens asked for but the corpus has {len(ids)}; add text with corpus.paths",
            )
        common = {
            "run_id": run_dir.name,
            "model": cmd.model.name,
            "model_sha256": model_fingerprint(model_path),
            "scaling": cmd.scaling.method,
            "scaling_factor": cmd.scaling.factor,
            "backends": f"llama_cpp {llama.version} | {hf.version}",
            "corpus_sha256": corpus.sha256,
            "tokenizers_identical": tokenizers["identical"],
        }
        manifest.update(
            model={"path": str(model_path), "sha256": common["model_sha256"]},
            scaling=describe(cmd.scaling, rope),
            backends={"llama_cpp": llama.provenance(), "transformers": hf.provenance()},
            corpus=corpus.provenance(),
            tokenizers=tokenizers,
            tolerance=vars(cmd.tolerance),
            cells_planned=len(cmd.context_lengths),
            cells_done=0,
        )
        bos = llama.bos_token_id if llama.adds_bos else None
        with RecordWriter(run_dir / PARITY_RECORDS) as writer:
            for length in cmd.context_lengths:
                sequence = scored_sequence(ids, bos, length)
                started = time.perf_counter()
                result = compare_scores(llama.score(sequence), hf.score(sequence))
                broken = within(cmd.tolerance, result)
                record = {
                    **common,
                    "context_length": length,
                    "trained_context_length": rope.trained_context_length,
                    **result,
                    "within_tolerance": not broken,
                    "outside_tolerance": ",".join(broken),
                    "seconds": time.perf_counter() - started,
                }
                writer.write_cell(f"parity/{length}", [record])
                manifest.update(cells_done=manifest.content["cells_done"] + 1)
                log.info("parity at %d tokens: %s", length, result)
    finally:
        llama.close()
        hf.close()
    rows = [
        json.loads(line) for line in (run_dir / PARITY_RECORDS).read_text().splitlines()
    ]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="[%(name)s] %(message)s"
    )
    cmd = compose_or_fail(
        "parity", ParityCommand, sys.argv[1:] if argv is None else argv, __doc__
    )
    try:
        check_writable(Path(cmd.results_dir))
    except BenchError as err:
        fail(str(err))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (
        Path(cmd.results_dir) / f"{stamp}-parity-{cmd.model.name}-{cmd.scaling.method}"
    )
    try:
        records = run_parity(cmd, run_dir)
    except BenchError as err:
        fail(str(err))
    columns = [
        "context_length",
        "mean_abs_logprob",
        "max_abs_logprob",
        "perplexity_llama_cpp",
        "perplexity_transformers",
        "top1_agreement",
        "within_tolerance",
    ]
    print(
        f"\n{cmd.model.name} | scaling={cmd.scaling.method} x{cmd.scaling.factor:g} | "
        f"tokenizers identical: {bool(records.tokenizers_identical.iloc[0])} | records in {run_dir / PARITY_RECORDS}\n"
    )
    print(records[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    sys.exit(EXIT_OK if records.within_tolerance.all() else EXIT_OUTSIDE_TOLERANCE)


if __name__ == "__main__":
    main()
