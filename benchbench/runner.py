"""One run: check everything, load the model, measure every cell, record it.

The order matters for trust. All checks that can fail (config, model file,
templates, corpus size, prompt lengths) run before the first forward pass, and
records are flushed cell by cell, so that a run either finishes with a
``complete`` manifest or says in its manifest why it did not.
"""

import fcntl
import hashlib
import json
import logging
import platform
import signal
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchbench.backends import open_backend
from benchbench.backends.base import Backend
from benchbench.backends.llama_cpp import (
    available_memory,
    check_model_matches,
    memory_estimate,
)
from benchbench.config import Settings
from benchbench.corpus import Corpus, load_corpus
from benchbench.errors import (
    ConfigError,
    PositionLimitError,
    RunError,
    RunInterrupted,
)
from benchbench.models import (
    model_fingerprint,
    model_shape,
    model_size,
    parameter_count,
    read_model_info,
    resolve_model_path,
)
from benchbench.records import (
    MANIFEST,
    PROMPTS,
    RECORDS,
    Manifest,
    RecordWriter,
    load_complete_cells,
    read_manifest,
    read_records,
    rewrite_records,
)
from benchbench.scaling import describe, is_length_dependent, resolve
from benchbench.scaling.llama_cpp import llama_cpp_params
from benchbench.tasks.base import CorpusTokens, Measurement, Task
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
        length_dependent = is_length_dependent(settings.scaling.method)
        tasks.append(
            PerplexityTask(selected["perplexity"], settings.seed, length_dependent)
        )
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
    found = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "benchbench": version("benchbench"),
        **{name: version(name) for name in packages},
    }
    for name in ("torch", "transformers", "gguf"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def model_folder_or_file(settings: Settings, corpus: Corpus) -> Path:
    """The model to load: a file or folder on disk, or a reference model trained for this run."""
    reference = settings.model.reference
    if reference is None:
        return resolve_model_path(settings.model, settings.backend.name)
    from benchbench.reference.train import ensure_trained

    return ensure_trained(reference, settings.encoding, corpus, PROJECT_ROOT)


def check_heldout(reference, tasks: list[Task], backend: Backend, corpus) -> None:
    """Refuse perplexity windows that would read text a reference model was trained on."""
    for task in tasks:
        if isinstance(task, PerplexityTask):
            heldout = len(backend.tokenize(corpus.text[: reference.heldout_characters]))
            if task.tokens_read > heldout:
                raise ConfigError(
                    "model.reference.heldout_characters",
                    f"the perplexity windows read {task.tokens_read} corpus tokens but only the first "
                    f"{heldout} were kept out of training; raise it or lower task.perplexity.windows",
                )


def check_scaling(settings: Settings, rope) -> None:
    """Refuse a scaling the model or backend cannot take, before anything loads."""
    resolve(settings.scaling, rope)
    if settings.backend.name == "llama_cpp":
        llama_cpp_params(settings.scaling, rope)
    elif rope.rope_freqs is not None or rope.freq_scale_train != 1.0:
        # transformers' GGUF loader reads neither, and would rotate plainly
        raise ConfigError(
            "backend",
            "the GGUF scales its own RoPE (a rope_freqs tensor or rope.scaling.factor), which "
            "transformers' GGUF loader drops; use backend=llama_cpp or the original checkpoint folder",
        )


def run(
    settings: Settings,
    run_dir: Path,
    resolved_config: dict,
    choices: dict,
    resume: bool = False,
    overrides: list[str] | None = None,
) -> pd.DataFrame:
    """Measure the sweep described by ``settings`` into ``run_dir``; return its records.

    With ``resume``, ``run_dir`` holds an earlier, unfinished run of the same
    config: its finished cells are kept and only the others are measured. A
    refused resume leaves that run exactly as it was. ``overrides`` are the
    command-line overrides that made this config (default: this process's
    arguments), recorded as the command that repeats the run.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [
        Path(sys.executable).name,
        "-m",
        "benchbench",
        *(sys.argv[1:] if overrides is None else overrides),
    ]
    with _RunLock(run_dir):
        return _run_locked(settings, run_dir, resolved_config, choices, resume, command)


def _run_locked(
    settings,
    run_dir: Path,
    resolved_config: dict,
    choices: dict,
    resume: bool,
    command: list[str],
) -> pd.DataFrame:
    if resume:
        original = read_manifest(run_dir)
        if original.get("status") == "complete":
            raise ResumeRefused(
                f"resume: the run in {run_dir} is already complete; start a new run instead"
            )
        difference = config_difference(original.get("config", {}), resolved_config)
        if difference:
            raise ResumeRefused(
                f"resume: the run in {run_dir} was made with a different config ({difference})"
            )
        manifest = Manifest.reopen(run_dir)
    elif (run_dir / MANIFEST).exists():
        # two runs started in the same second would otherwise share records
        raise RunError(
            f"{run_dir} already holds a run; choose another folder with hydra.run.dir=..."
        )
    else:
        manifest = Manifest(
            run_dir,
            {
                "run_id": run_id(run_dir, Path(settings.results_dir)),
                "command": command,
                "choices": choices,
                "config": resolved_config,
                "seed": settings.seed,
                "versions": versions(),
                "records": RECORDS,
                "prompts": PROMPTS,
            },
        )
    try:
        records = _measure(settings, run_dir, manifest, resume)
    except ResumeRefused:
        manifest.content = original
        manifest.save()
        raise
    except (Exception, KeyboardInterrupt) as err:
        manifest.finish_after(err)
        raise
    manifest.finish("complete")
    return records


def run_id(run_dir: Path, results_dir: Path) -> str:
    """A run's name: its folder below ``results_dir``, so a multirun's jobs keep their sweep's name."""
    try:
        return run_dir.resolve().relative_to(results_dir.resolve()).as_posix()
    except ValueError:
        return run_dir.name


class ResumeRefused(RunError):
    """The run to resume does not match this command; it is left untouched."""


class _RunLock:
    """An exclusive lock on a run folder, so that two processes never write one run."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"

    def __enter__(self):
        self._handle = self.path.open("a")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise RunError(
                f"another benchbench process is writing {self.path.parent}"
            ) from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


# keys that may differ between a run and its resumption
RESUME_FREE_KEYS = ("resume", "results_dir")


def config_difference(old: dict, new: dict, prefix: str = "") -> str:
    """The first key at which two resolved configs differ, or "" if they agree."""
    for key in sorted(set(old) | set(new)):
        if not prefix and key in RESUME_FREE_KEYS:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = config_difference(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"{prefix}{key}: {a!r} then, {b!r} now"
    return ""


def _measure(
    settings: Settings, run_dir: Path, manifest: Manifest, resume: bool
) -> pd.DataFrame:
    sweep = settings.sweep
    longest = max(sweep.context_lengths)
    n_ctx = settings.backend.n_ctx or longest
    if longest > n_ctx:
        raise ConfigError(
            "backend.n_ctx",
            f"is {n_ctx} but sweep.context_lengths asks for {longest}; raise backend.n_ctx or drop the length",
        )

    # everything that reads files comes before the model is loaded
    tasks = build_tasks(settings)
    corpus = load_corpus(settings.corpus)
    model_path = model_folder_or_file(settings, corpus)
    rope, metadata = read_model_info(model_path)
    check_model_matches(
        rope, settings.model.trained_context_length, settings.model.rope_theta
    )
    check_scaling(settings, rope)

    _check_memory(metadata, n_ctx, settings, model_path)

    log.info("hashing %s", model_path.name)
    model_sha256 = model_fingerprint(model_path)
    if (
        resume
        and manifest.content.get("model", {}).get("sha256", model_sha256)
        != model_sha256
    ):
        raise ResumeRefused(
            f"resume: {model_path} is not the model file the run in {run_dir} started with"
        )
    log.info(
        "loading %s into %s with n_ctx=%d",
        model_path.name,
        settings.backend.name,
        n_ctx,
    )
    backend = open_backend(model_path, rope, settings.backend, settings.scaling, n_ctx)
    try:
        corpus_tokens = tokenize_corpus(backend, corpus)
        for task in tasks:
            task.prepare(backend, corpus_tokens, sweep)
        if settings.model.reference is not None:
            check_heldout(settings.model.reference, tasks, backend, corpus)
        plan = [
            (task, cell) for task in tasks for cell in task.run_order(task.cells(sweep))
        ]
        done = _settle_prompts_and_records(run_dir, plan, resume)

        manifest.update(
            model={
                "name": settings.model.name,
                "path": str(model_path),
                "sha256": model_sha256,
                "size_bytes": model_size(model_path),
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
            cells_done=len(done),
        )

        common = {
            "run_id": manifest.content["run_id"],
            "model": settings.model.name,
            "model_sha256": model_sha256,
            "backend": backend.name,
            "backend_version": backend.version,
            "encoding": settings.model.encoding,
            "scaling": settings.scaling.method,
            "scaling_factor": settings.scaling.factor,
            # the method's other parameters, as the run resolved them; LongRoPE's
            # factor lists as JSON text, so that every column holds scalars
            **{
                f"scaling_{k}": json.dumps(v) if isinstance(v, list) else v
                for k, v in describe(settings.scaling, rope).items()
                if k not in ("method", "factor")
            },
            "seed": settings.seed,
            "corpus_sha256": corpus.sha256,
        }
        _run_cells(plan, done, backend, run_dir, common, manifest)
    finally:
        backend.close()
    return read_records(run_dir)


def _check_memory(metadata: dict, n_ctx: int, settings: Settings, model_path) -> None:
    """Refuse a context that would not fit in memory, before loading anything."""
    backend = settings.backend
    if backend.name == "transformers":
        from benchbench.backends.transformers import memory_estimate as estimate

        n_params = parameter_count(model_path)
        if n_params is None:
            log.info("no safetensors weights to size; memory is not checked")
            return
        need = estimate(model_shape(metadata), n_ctx, backend, n_params)
        on_gpu = backend.device != "cpu"
        hint = "drop the length, lower backend.n_ubatch or set backend.dtype=bfloat16"
    else:
        need = memory_estimate(metadata, n_ctx, backend, model_size(model_path))
        on_gpu = backend.n_gpu_layers != 0
        hint = (
            "drop the length, lower backend.n_batch or set "
            "backend.type_k=q8_0 backend.type_v=q8_0"
        )
    free = available_memory()
    gib = 1 << 30
    log.info(
        "memory for n_ctx=%d: about %.2f GiB (KV cache %.2f GiB)",
        n_ctx,
        need["total"] / gib,
        need["kv_cache"] / gib,
    )
    # on a GPU the cache lives there; its memory is not visible here
    if on_gpu or free is None:
        return
    if need["total"] > 0.9 * free:
        raise ConfigError(
            "sweep.context_lengths",
            f"{n_ctx} tokens need about {need['total'] / gib:.1f} GiB (KV cache {need['kv_cache'] / gib:.1f} GiB, "
            f"logits {need['logits'] / gib:.1f} GiB, weights {need['weights'] / gib:.1f} GiB) but "
            f"{free / gib:.1f} GiB are free; {hint}",
        )


def _settle_prompts_and_records(run_dir: Path, plan: list, resume: bool) -> set[str]:
    """Write the prompt manifest, or check it against the run being resumed.

    Returns the ids of cells already measured. The prompt manifest lists each
    cell's token count and the sha256 of its token ids, so that two runs can be
    shown to have fed the model the same prompts.
    """
    prompts = []
    for task, cell in plan:
        tokens = task.prompt(cell)
        digest = hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()
        prompts.append(
            {"cell_id": cell.id, "prompt_tokens": len(tokens), "sha256": digest}
        )

    path = run_dir / PROMPTS
    if not resume:
        path.write_text(
            "".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8"
        )
        return set()

    if not path.exists():
        raise ResumeRefused(
            f"resume: {run_dir} has no {PROMPTS}; it cannot be checked, so start a new run"
        )
    try:
        earlier = [
            json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
        ]
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ResumeRefused(f"resume: {path} is damaged; start a new run") from None
    if earlier != prompts:
        changed = next(
            (
                a.get("cell_id")
                for a, b in zip(earlier, prompts, strict=False)
                if a != b
            ),
            "the cell list",
        )
        raise ResumeRefused(
            f"resume: the prompts differ from the run in {run_dir} (first at {changed}); "
            "the tokenizer, templates or corpus changed, so start a new run"
        )
    # keep finished cells only; a cell cut short by a crash is measured again
    try:
        kept = load_complete_cells(run_dir / RECORDS)
    except RunError as err:
        raise ResumeRefused(f"resume: {err}") from None
    rewrite_records(run_dir / RECORDS, kept)
    return {r["cell_id"] for r in kept}


def provenance_key(common: dict, task: Task) -> str:
    """A short hash of everything besides the config grid that shapes a number.

    Records with different keys (another model file, backend version, corpus,
    prompt template or format, YaRN betas) must never be averaged into one cell.
    """
    fixed = ("model_sha256", "backend", "backend_version", "corpus_sha256")
    # scaling parameters beyond method and factor (YaRN betas, original context)
    parts = {
        key: value
        for key, value in common.items()
        if key in fixed or key.startswith("scaling_")
    }
    parts.pop("scaling_factor", None)
    parts.update(task.settings())
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class _StopAfterCell:
    """Turns the first Ctrl-C or SIGTERM into a request to stop once the current cell is written.

    A second signal stops at once. Schedulers send SIGTERM before they preempt
    a job, so a preempted run ends ``interrupted`` and can be resumed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signal = ""
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                sig: signal.signal(sig, self._handle) for sig in self.SIGNALS
            }
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal = (
            "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        )
        tqdm.write(
            f"{signal.Signals(signum).name}: stopping after the current cell (again to stop at once)"
        )

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def refusals(task: Task, cell, reason: str) -> list[Measurement]:
    """One valueless measurement per metric of ``cell``, saying why the model refused it."""
    return [
        Measurement(
            metric,
            None,
            len(task.prompt(cell)),
            {"refused": reason},
        )
        for metric in task.metrics
    ]


def _run_cells(
    plan,
    done: set[str],
    backend: Backend,
    run_dir: Path,
    common: dict,
    manifest: Manifest,
) -> None:
    todo = [(task, cell) for task, cell in plan if cell.id not in done]
    if done:
        log.info("resuming: %d of %d cells already measured", len(done), len(plan))
    # progress is weighted by tokens, since a cell's cost grows with its length
    bar = tqdm(
        total=sum(cell.context_length for _, cell in plan),
        initial=sum(cell.context_length for _, cell in plan if cell.id in done),
        unit="tok",
        unit_scale=True,
        desc="measuring",
        dynamic_ncols=True,
    )
    finished = len(done)
    with RecordWriter(run_dir / RECORDS) as writer, bar, _StopAfterCell() as stop:
        for task, cell in todo:
            bar.set_postfix_str(
                f"cell {finished + 1}/{len(plan)} {cell.task} @ {cell.context_length}"
            )
            started = time.perf_counter()
            try:
                measurements = task.run(cell, backend)
            except PositionLimitError as err:
                # the model cannot represent this length: a result, not a crash
                measurements = refusals(task, cell, str(err))
            seconds = time.perf_counter() - started
            records = [
                {
                    **common,
                    "provenance": provenance_key(common, task),
                    "task": cell.task,
                    "context_length": m.context_length or cell.context_length,
                    "depth": cell.depth,
                    "sample": cell.sample,
                    "metric": m.metric,
                    "value": m.value,
                    "prompt_tokens": m.prompt_tokens,
                    **task.settings(),
                    **m.details,
                    "seconds": m.details.get("seconds", seconds),
                }
                for m in measurements
            ]
            writer.write_cell(cell.id, records)
            finished += 1
            bar.update(cell.context_length)
            manifest.update(cells_done=finished)
            if stop.requested and finished < len(plan):
                raise RunInterrupted(
                    f"stopped by {stop.signal} after {finished} of {len(plan)} cells"
                )
