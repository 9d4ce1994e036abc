"""One run: check everything, load the model, measure every cell, record it.

The order matters for trust. All checks that can fail (config, model file,
templates, corpus size, prompt lengths) run before the first forward pass, and
records are flushed cell by cell, so that a run either finishes with a
``complete`` manifest or says in its manifest why it did not.
"""

import logging
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchbench.backends.base import Backend
from benchbench.backends.llama_cpp import (
    LlamaCppBackend,
    check_model_matches,
    read_rope_info,
)
from benchbench.config import Settings
from benchbench.corpus import Corpus, load_corpus
from benchbench.errors import BenchError, ConfigError
from benchbench.models import file_sha256, resolve_model_path
from benchbench.records import MANIFEST, RECORDS, Manifest, RecordWriter, read_records
from benchbench.scaling import describe
from benchbench.tasks.base import CorpusTokens, Task
from benchbench.tasks.needle import NeedleTask
from benchbench.tasks.passkey import PasskeyTask
from benchbench.tasks.perplexity import PerplexityTask
from benchbench.tasks.prompt import sentence_boundaries

log = logging.getLogger(__name__)

# where conf/ and tasks/ live: the project root, one level above this package
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_tasks(settings: Settings, root: Path = PROJECT_ROOT) -> list[Task]:
    selected = settings.task.selected()
    tasks: list[Task] = []
    if "passkey" in selected:
        tasks.append(PasskeyTask(selected["passkey"], settings.seed, root))
    if "needle" in selected:
        tasks.append(NeedleTask(selected["needle"], settings.seed, root))
    if "perplexity" in selected:
        tasks.append(PerplexityTask(selected["perplexity"], settings.seed))
    return tasks


def tokenize_corpus(backend: Backend, corpus: Corpus) -> CorpusTokens:
    tokens = backend.tokenize(corpus.text)
    boundaries = sentence_boundaries(backend, tokens)
    newline_ids = {t for t in set(tokens) if backend.detokenize([t]).endswith("\n")}
    starts = [i + 1 for i, t in enumerate(tokens) if t in newline_ids]
    return CorpusTokens(
        tokens=tokens, boundaries=boundaries, paragraph_starts=[0] + starts
    )


def versions() -> dict:
    packages = ("llama_cpp_python", "hydra-core", "numpy", "pandas")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "benchbench": version("benchbench"),
        **{name: version(name) for name in packages},
    }


def run(
    settings: Settings, run_dir: Path, resolved_config: dict, choices: dict
) -> pd.DataFrame:
    """Measure the sweep described by ``settings`` into ``run_dir``; return its records."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / MANIFEST).exists():
        # two runs started in the same second would otherwise share records
        raise BenchError(f"{run_dir} already holds a run; choose another folder with hydra.run.dir=...")
    manifest = Manifest(
        run_dir,
        {
            "run_id": run_dir.name,
            "command": ["python", "-m", "benchbench", *sys.argv[1:]],
            "choices": choices,
            "config": resolved_config,
            "seed": settings.seed,
            "versions": versions(),
            "records": RECORDS,
        },
    )
    try:
        records = _measure(settings, run_dir, manifest)
    except BenchError as err:
        manifest.finish("failed", error=str(err))
        raise
    except KeyboardInterrupt:
        manifest.finish("interrupted", error="stopped by the user (Ctrl-C)")
        raise
    except Exception as err:
        manifest.finish("failed", error=f"{type(err).__name__}: {err}")
        raise
    manifest.finish("complete")
    return records


def _measure(settings: Settings, run_dir: Path, manifest: Manifest) -> pd.DataFrame:
    sweep = settings.sweep
    longest = max(sweep.context_lengths)
    n_ctx = settings.backend.n_ctx or longest
    if longest > n_ctx:
        raise ConfigError(
            "backend.n_ctx",
            f"is {n_ctx} but sweep.context_lengths asks for {longest}; raise backend.n_ctx or drop the length",
        )

    # everything that reads files comes before the model is loaded
    model_path = resolve_model_path(settings.model)
    rope, metadata = read_rope_info(model_path)
    check_model_matches(
        rope, settings.model.trained_context_length, settings.model.rope_theta
    )
    tasks = build_tasks(settings)
    corpus = load_corpus(settings.corpus)

    log.info("hashing %s", model_path.name)
    model_sha256 = file_sha256(model_path)
    log.info("loading %s into llama.cpp with n_ctx=%d", model_path.name, n_ctx)
    backend = LlamaCppBackend(
        model_path, rope, settings.backend, settings.scaling, n_ctx
    )
    try:
        corpus_tokens = tokenize_corpus(backend, corpus)
        for task in tasks:
            task.prepare(backend, corpus_tokens, sweep)
        plan = [(task, cell) for task in tasks for cell in task.cells(sweep)]

        manifest.update(
            model={
                "name": settings.model.name,
                "path": str(model_path),
                "sha256": model_sha256,
                "size_bytes": model_path.stat().st_size,
                "general.name": metadata.get("general.name"),
                "architecture": metadata.get("general.architecture"),
                "trained_context_length": rope.trained_context_length,
                "rope_theta": rope.rope_theta,
                "rope_dimensions": rope.rope_dimensions,
            },
            scaling=describe(settings.scaling, rope),
            backend=backend.provenance(),
            corpus={**corpus.provenance(), "tokens": len(corpus_tokens.tokens)},
            tasks={task.name: task.settings() for task in tasks},
            cells_planned=len(plan),
        )

        common = {
            "run_id": run_dir.name,
            "model": settings.model.name,
            "model_sha256": model_sha256,
            "backend": backend.name,
            "encoding": settings.model.encoding,
            "scaling": settings.scaling.method,
            "scaling_factor": settings.scaling.factor,
            "seed": settings.seed,
            "corpus_sha256": corpus.sha256,
        }
        _run_cells(plan, backend, run_dir, common, manifest)
    finally:
        backend.close()
    return read_records(run_dir)


def _run_cells(
    plan, backend: Backend, run_dir: Path, common: dict, manifest: Manifest
) -> None:
    # progress is weighted by tokens, since a cell's cost grows with its length
    total_tokens = sum(cell.context_length for _, cell in plan)
    bar = tqdm(
        total=total_tokens,
        unit="tok",
        unit_scale=True,
        desc="measuring",
        dynamic_ncols=True,
    )
    with RecordWriter(run_dir / RECORDS) as writer, bar:
        for done, (task, cell) in enumerate(plan, start=1):
            bar.set_postfix_str(
                f"cell {done}/{len(plan)} {cell.task} @ {cell.context_length}"
            )
            started = time.perf_counter()
            measurements = task.run(cell, backend)
            seconds = time.perf_counter() - started
            for m in measurements:
                writer.write(
                    {
                        **common,
                        "task": cell.task,
                        "context_length": cell.context_length,
                        "depth": cell.depth,
                        "sample": cell.sample,
                        "metric": m.metric,
                        "value": m.value,
                        "prompt_tokens": m.prompt_tokens,
                        **task.settings(),
                        **m.details,
                        "seconds": m.details.get("seconds", seconds),
                    }
                )
            bar.update(cell.context_length)
            manifest.update(cells_done=done)
