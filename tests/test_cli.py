"""``python -m benchbench`` as a user runs it: the real model, the table, the run directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def benchbench(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # Hydra's flags (-m, --cfg) go before the overrides, as on a command line
    flags = [o for o in overrides if o.startswith("-")]
    rest = [o for o in overrides if not o.startswith("-")]
    cmd = [
        sys.executable,
        "-m",
        "benchbench",
        *flags,
        f"results_dir={tmp_path / 'results'}",
        *rest,
    ]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "results").glob("*/"))


@pytest.mark.slow
def test_smoke_sweep_end_to_end(tmp_path):
    result = benchbench(tmp_path, "sweep=smoke")
    assert result.returncode == 0, result.stderr[-2000:]

    # the table: one row per task, one column per length
    assert (
        "passkey" in result.stdout
        and "needle" in result.stdout
        and "perplexity" in result.stdout
    )
    assert "256" in result.stdout and "512" in result.stdout

    (run_dir,) = run_dirs(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert (
        # per length 2 depths x 2 samples for each retrieval task; perplexity
        # takes one pass per window at the longest length for both lengths
        manifest["cells_done"] == manifest["cells_planned"] == 2 * (2 * 2 + 2 * 2) + 2
    )
    assert len(manifest["model"]["sha256"]) == 64
    assert manifest["corpus"]["source"].startswith("pydoc_data.topics")
    assert manifest["backend"]["rope_effective"]["freq_base"] == 100000.0

    records = pd.read_json(run_dir / "records.jsonl", lines=True)
    for column in (
        "model",
        "backend",
        "encoding",
        "scaling",
        "task",
        "context_length",
        "depth",
        "sample",
        "metric",
        "value",
        "prompt_tokens",
        "seconds",
    ):
        assert column in records.columns, column
    # the scaling actually resolved is on every record
    assert (records.scaling_original_context_length == 8192).all()
    assert records.provenance.str.len().eq(16).all()
    retrieval = records[records.metric == "exact_match"]
    # lengths are exact: prompt plus answer budget fills the context length
    assert (
        retrieval.prompt_tokens + retrieval.max_new_tokens == retrieval.context_length
    ).all()
    # SmolLM2-135M finds a passkey in a few hundred tokens of filler
    passkey = retrieval[retrieval.task == "passkey"]
    assert len(passkey) == 8
    assert passkey.value.mean() >= 0.75, passkey[
        ["context_length", "depth", "target", "output"]
    ]

    nll = records[(records.task == "perplexity") & (records.metric == "nll")]
    # two windows per length, each scoring context_length - 1 new tokens
    assert sorted(nll.scored_tokens) == [255, 255, 511, 511]
    assert nll.one_pass.all() and (nll.pass_tokens == 512).all()
    ppl = records[(records.task == "perplexity") & (records.metric == "perplexity")]
    assert ppl.value.between(5, 60).all(), ppl.value


@pytest.mark.slow
def test_same_seed_same_prompts_and_scores(tmp_path):
    args = ("sweep=smoke", "task=[passkey]", "sweep.context_lengths=[256]")
    first = benchbench(tmp_path / "a", *args)
    second = benchbench(tmp_path / "b", *args)
    assert first.returncode == second.returncode == 0
    a = pd.read_json(run_dirs(tmp_path / "a")[0] / "records.jsonl", lines=True)
    b = pd.read_json(run_dirs(tmp_path / "b")[0] / "records.jsonl", lines=True)
    assert list(a.prompt_sha256) == list(b.prompt_sha256)
    assert list(a.output) == list(b.output)
    assert list(a.value) == list(b.value)
    # the prompt manifests are byte for byte the same
    prompts = [
        (run_dirs(tmp_path / side)[0] / "prompts.jsonl").read_bytes() for side in "ab"
    ]
    assert prompts[0] == prompts[1] and len(prompts[0].splitlines()) == 4


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, smollm2_path) -> Path:
    """Broken inputs of every kind, made once: files, folders, templates."""
    root = tmp_path_factory.mktemp("bad")
    (root / "empty.txt").write_text("")
    (root / "binary.txt").write_bytes(b"\x7fELF\x00\x00binary")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (root / "short.txt").write_text("Only a few words of text. " * 20)
    (root / "zip.gguf").write_bytes(b"PK\x03\x04 this is a zip")
    (root / "truncated.gguf").write_bytes(smollm2_path.read_bytes()[:3_000_000])
    (root / "corrupted.gguf").write_bytes(
        b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 16
    )
    (root / "a_file").write_text("not a folder")
    for name, text in {"config_empty": "{}", "config_broken": "{"}.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(text)
    (root / "no_sentences.txt").write_text("word " * 20000)
    for name, needle in {"brace": " The key { is {passkey}.", "latin1": None}.items():
        folder = root / f"template_{name}"
        folder.mkdir()
        for piece in ("instruction", "question", "answer_prefix", "filler"):
            (folder / f"{piece}.txt").write_text(" Grass grows.")
        if needle is None:
            (folder / "needle.txt").write_bytes(" Caf\xe9 {passkey}.".encode("latin-1"))
        else:
            (folder / "needle.txt").write_text(needle)
    template = root / "template"
    template.mkdir()
    for piece, text in {
        "instruction": "Find the key.\n",
        "needle": " The key is hidden here.",
        "question": "\nWhat is the key?",
        "answer_prefix": " The key is",
        "filler": " Grass grows.",
    }.items():
        (template / f"{piece}.txt").write_text(text)
    return root


# (overrides, what the one error line must say); {bad} is the bad_files folder
BAD_INPUT = [
    (
        ["model=gpt5"],
        "model=gpt5: no such option; choose one of custom, llama3, reference, smollm2",
    ),
    (["scaling=rope9"], "scaling=rope9: no such option"),
    (["task=[passkey,trivia]"], "task=trivia: no such option"),
    (["sweep=huge"], "sweep=huge: no such option"),
    (["scaling.factr=2"], "scaling.factr"),
    (["sweep.context_lengths=[256,512]", "sweep.depth=[0.5]"], "sweep.depth"),
    (["scaling=yarn", "scaling.factor=two"], "scaling.factor"),
    (["sweep.samples=many"], "sweep.samples"),
    (["sweep.context_lengths=[]"], "sweep.context_lengths: is empty"),
    (["sweep.context_lengths=[0]"], "sweep.context_lengths: lengths must be positive"),
    (
        ["sweep.context_lengths=[-512]"],
        "sweep.context_lengths: lengths must be positive",
    ),
    (
        ["sweep.context_lengths=[512,256]"],
        "sweep.context_lengths: must be in increasing order",
    ),
    (["sweep.context_lengths=[256,256]"], "sweep.context_lengths: has duplicates"),
    (["sweep.depths=[2.0]"], "sweep.depths: depths must lie in [0, 1]"),
    (["sweep.depths=[-0.5]"], "sweep.depths: depths must lie in [0, 1]"),
    (["scaling=linear", "scaling.factor=0.5"], "scaling.factor: must be a number >= 1"),
    (
        ["scaling=yarn", "scaling.beta_fast=1", "scaling.beta_slow=32"],
        "are they reversed?",
    ),
    (
        ["scaling=yarn", "scaling.attention_factor=1.5"],
        "scaling.attention_factor: llama.cpp always uses",
    ),
    (["model=llama3"], "model.path: model 'llama3.1-8b' needs a GGUF file"),
    (["model=llama3", "model.path=/nonexistent/llama.gguf"], "does not exist"),
    (["model=llama3", "model.path={bad}"], "is a directory"),
    (["model=llama3", "model.path={bad}/zip.gguf"], "is not a GGUF file"),
    (["model=llama3", "model.path={bad}/truncated.gguf"], "not within the file bounds"),
    (["model=llama3", "model.path={bad}/corrupted.gguf"], "llama.cpp could not read"),
    (
        ["corpus=files", "corpus.paths=[/nonexistent.txt]"],
        "corpus.paths: '/nonexistent.txt' is not a readable file",
    ),
    (["corpus=files", "corpus.paths=[{bad}/empty.txt]"], "is empty"),
    (["corpus=files", "corpus.paths=[{bad}/binary.txt]"], "looks binary"),
    (["corpus=files", "corpus.paths=[{bad}/latin1.txt]"], "is not UTF-8 text"),
    (["corpus=files", "corpus.paths=[{bad}/short.txt]"], "corpus: "),
    (
        ["backend.n_ctx=256"],
        "backend.n_ctx: is 256 but sweep.context_lengths asks for 512",
    ),
    (["sweep.context_lengths=[12]", "task=[passkey]"], "sweep.context_lengths"),
    (["sweep.context_lengths=[4000000]"], "GiB are free"),
    (
        ["backend=transformers", "sweep.context_lengths=[4000000]"],
        "GiB are free; drop the length, lower backend.n_ubatch",
    ),
    (["seed=-1"], "seed: must be a non-negative integer"),
    (["+sweep.lenghts=[999]"], "sweep.lenghts: is not a benchbench setting"),
    (["task=[passkey]", "task.needle.max_new_tokens=5"], "not selected"),
    (
        ["scaling=yarn", "scaling.beta_slow=-5"],
        "scaling.beta_slow: must be a positive number",
    ),
    (
        ["scaling=yarn", "scaling.beta_fast=nan"],
        "scaling.beta_fast: must be a positive number",
    ),
    (
        ["scaling=ntk", "scaling.factor=1e300"],
        "scaling.factor: 1e+300 is beyond any context extension",
    ),
    (["results_dir="], "results_dir: is empty"),
    (
        ["corpus.paths=[{bad}/short.txt]"],
        "corpus.paths: is only read with corpus=files",
    ),
    (
        ["task=[passkey]", "task.passkey.digits=18"],
        "task.passkey.max_new_tokens: 10 tokens cannot hold",
    ),
    (
        ["task=[needle]", "corpus=files", "corpus.paths=[{bad}/no_sentences.txt]"],
        "needs sentence ends",
    ),
    (
        ["task=[passkey]", "task.passkey.template_dir={bad}/template_brace"],
        "is not a valid template",
    ),
    (
        ["task=[passkey]", "task.passkey.template_dir={bad}/template_latin1"],
        "is not UTF-8 text",
    ),
    (["-m", "scaling=none,yarn", "sweep.lenghts=3"], "sweep.lenghts"),
    (
        ["-m", "scaling=linear,none", "scaling.factor=2"],
        "job 1 (scaling=none): scaling.factor: scaling=none takes no factor",
    ),
    (
        ["-m", "scaling=yarn,bogus"],
        "job 1 (scaling=bogus): scaling=bogus: no such option",
    ),
    (["-m", "seed=1,-1"], "job 1 (seed=-1): seed: must be"),
    (["backend.type_k=q3"], "backend.type_k: unknown type 'q3'"),
    (
        ["scaling=dynamic"],
        "scaling.method: llama.cpp cannot apply 'dynamic' at run time (it has no flag for it); "
        "run it with backend=transformers",
    ),
    (["scaling=llama3"], "run it with backend=transformers"),
    (
        ["scaling=longrope", "scaling.short_factor=[1,1]", "scaling.long_factor=[1,2]"],
        "scaling.short_factor: has 2 numbers but this model rotates 32 pairs",
    ),
    (
        ["scaling=yarn", "scaling.original_context_length=16384"],
        "scaling.original_context_length: is 16384 but the model was trained on 8192 tokens",
    ),
    (["scaling=yarn", "scaling.mscale=1"], "scaling.mscale_all_dim: "),
    (
        ["scaling=llama3", "scaling.low_freq_factor=4", "scaling.high_freq_factor=2"],
        "scaling.high_freq_factor: must be larger than scaling.low_freq_factor (2 <= 4)",
    ),
    (
        ["backend=transformers", "backend.device=tpu"],
        "backend.device: unknown value 'tpu'",
    ),
    (["backend=transformers", "model.path={bad}"], "has no config.json"),
    (
        ["backend=transformers", "model=custom", "model.path={bad}/config_empty"],
        "model.path: '{bad}/config_empty/config.json' lacks 'num_attention_heads'",
    ),
    (
        ["backend=transformers", "model=custom", "model.path={bad}/config_broken"],
        "config.json' is not valid",
    ),
    (["model=custom"], "model.path: model 'custom' needs a GGUF file"),
    (
        ["backend=transformers", "backend.device=cuda:abc"],
        "backend.device: unknown value 'cuda:abc'",
    ),
    (
        ["backend=transformers", "backend.attn_implementation=flash_attention_2"],
        "backend.attn_implementation: flash_attention_2 needs a CUDA device",
    ),
    (
        ["scaling=linear", "scaling.original_context_length=4096"],
        "scaling.original_context_length: is not read by scaling=linear",
    ),
    (
        ["scaling=yarn", "scaling.beta_slow=40"],
        "scaling.beta_slow: must be smaller than scaling.beta_fast (default 32), got 40",
    ),
    (
        ["backend.type_v=q8_0", "backend.flash_attn=false"],
        "needs backend.flash_attn=true",
    ),
    (["results_dir={bad}/a_file/results"], "results_dir: cannot create"),
    (["resume={bad}"], "resume: "),
    (
        ["task=[passkey]", "task.passkey.template_dir={bad}/template"],
        "lacks the placeholder {passkey}",
    ),
    (
        ["task=[passkey]", "task.passkey.template_dir={bad}/nowhere"],
        "task.passkey.template_dir",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"), BAD_INPUT, ids=[" ".join(o) for o, _ in BAD_INPUT]
)
def test_bad_input_gives_one_line(tmp_path, bad_files, overrides, message):
    overrides = [o.replace("{bad}", str(bad_files)) for o in overrides]
    message = message.replace("{bad}", str(bad_files))
    result = benchbench(tmp_path, "sweep=smoke", *overrides)
    assert result.returncode == 2, result.stderr
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("benchbench: error:")
    ]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    # nothing left behind that could pass for a finished run
    for run_dir in run_dirs(tmp_path):
        manifest = run_dir / "manifest.json"
        if manifest.exists():
            assert json.loads(manifest.read_text())["status"] == "failed"
        assert not (run_dir / "records.jsonl").exists()


@pytest.mark.slow
def test_prefix_cache_gives_the_records_of_recomputing(tmp_path):
    args = ("sweep=smoke", "task=[passkey,needle]")
    cached = benchbench(tmp_path / "cached", *args, "backend.prefix_cache=true")
    fresh = benchbench(tmp_path / "fresh", *args, "backend.prefix_cache=false")
    assert cached.returncode == fresh.returncode == 0, (
        cached.stderr[-1000:] + fresh.stderr[-1000:]
    )
    a = pd.read_json(run_dirs(tmp_path / "cached")[0] / "records.jsonl", lines=True)
    b = pd.read_json(run_dirs(tmp_path / "fresh")[0] / "records.jsonl", lines=True)
    a, b = (
        a.sort_values("cell_id").reset_index(),
        b.sort_values("cell_id").reset_index(),
    )
    assert list(a.output) == list(b.output)
    assert list(a.value) == list(b.value)
    assert list(a.prompt_sha256) == list(b.prompt_sha256)
    # the cache really was used: most prompts reuse a shared prefix
    assert (a.reused_tokens > 0).sum() >= len(a) // 2
    assert (b.reused_tokens == 0).all()
