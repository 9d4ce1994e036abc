"""benchbench and lm-evaluation-harness measure the same samples the same way.

The passkey task loads in lm-eval from ``tasks/`` and its samples are
benchbench's prompts; lm-eval's own ``hf`` model and benchbench's backends as
lm-eval models give, sample by sample, what benchbench's runner gives.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchbench.lmeval.passkey import build_docs
from tests.test_cli import ROOT

SWEEP = {"context_lengths": [256, 512], "depths": [0.25, 0.75], "samples": 1}
SWEEP_OVERRIDES = [
    "task=[passkey]",
    "sweep.context_lengths=[256,512]",
    "sweep.depths=[0.25,0.75]",
    "sweep.samples=1",
]


def runner_records(tmp_path: Path, *overrides: str) -> pd.DataFrame:
    """The passkey records of ``python -m benchbench`` on SWEEP, by cell id."""
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchbench", f"results_dir={results}"]
        + SWEEP_OVERRIDES
        + list(overrides),
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (records,) = results.glob("*/records.jsonl")
    frame = pd.read_json(records, lines=True)
    return frame.set_index("cell_id")


def lm_eval_samples(model, metadata: dict) -> list[dict]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(ROOT / "tasks"), metadata=metadata)
    out = simple_evaluate(
        model=model,
        tasks=["benchbench_passkey"],
        task_manager=manager,
        log_samples=True,
    )
    return out["samples"]["benchbench_passkey"]


def test_passkey_docs_are_the_runners_prompts(smollm2_path, smollm2):
    from benchbench.config import PasskeyConfig, SweepConfig
    from benchbench.runner import PROJECT_ROOT
    from benchbench.tasks.base import CorpusTokens
    from benchbench.tasks.passkey import PasskeyTask

    docs = build_docs({"gguf": str(smollm2_path), **SWEEP})
    assert [d["cell_id"] for d in docs] == [
        "passkey/256/0.25/0",
        "passkey/256/0.75/0",
        "passkey/512/0.25/0",
        "passkey/512/0.75/0",
    ]
    # benchbench's own prompts for the same cells, through the loaded model
    sweep = SweepConfig(**SWEEP)
    task = PasskeyTask(PasskeyConfig(), 1234, PROJECT_ROOT)
    task.prepare(smollm2, CorpusTokens([], [], []), sweep)
    for doc, cell in zip(docs, task.cells(sweep), strict=True):
        ids = task.prompt(cell)
        assert doc["prompt_tokens"] == len(ids) == cell.context_length - 10
        assert smollm2.tokenize(doc["input"], special=True) == ids
        assert doc["target"] == task.fields(cell)["passkey"]
        assert doc["target"] in doc["input"]


def test_passkey_docs_need_a_tokenizer():
    from benchbench.errors import ConfigError

    with pytest.raises(ConfigError, match="metadata: benchbench_passkey sizes its"):
        build_docs(SWEEP)


def test_the_task_folder_lists_in_lm_eval():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(ROOT / "tasks"))
    assert "benchbench_passkey" in manager.all_tasks


@pytest.mark.slow
def test_benchbench_backend_in_lm_eval_matches_the_runner(tmp_path):
    from benchbench.lmeval import BenchbenchLM

    records = runner_records(tmp_path)
    lm = BenchbenchLM(["backend.n_ctx=1024"])
    samples = lm_eval_samples(lm, {**lm.task_metadata(), **SWEEP})
    lm.backend.close()

    assert len(samples) == len(records) == 4
    for sample in samples:
        record = records.loc[sample["doc"]["cell_id"]]
        assert sample["doc"]["prompt_sha256"] == record.prompt_sha256
        # lm-eval cuts the continuation at the stop string; benchbench keeps it
        assert sample["resps"][0][0] == record.output.split("\n")[0]
        assert sample["exact_match"] == record.value
    assert records.value.sum() > 0  # the comparison covers correct answers


@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory, smollm2_path):
    """The embedded SmolLM2 as a Hugging Face checkpoint folder, written offline.

    Weights dequantized to float32 by transformers' GGUF loader; the tokenizer
    with benchbench's repair of its digit split, so that it splits text as
    llama.cpp does.
    """
    import copy

    import torch
    import transformers

    from tests.conftest import load_transformers

    folder = tmp_path_factory.mktemp("smollm2-hf")
    backend = load_transformers(smollm2_path, n_ctx=1024)
    # transformers will not save a model it loaded from GGUF, so the float32
    # weights go into a fresh model of the same config
    config = copy.deepcopy(backend._model.config)
    del config.quantization_config
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(backend._model.state_dict(), strict=True)
    model.save_pretrained(folder)
    backend._tokenizer.save_pretrained(folder)
    backend.close()
    return folder


@pytest.mark.slow
def test_lm_evals_own_hf_model_matches_benchbenchs_transformers_backend(
    tmp_path, checkpoint_folder
):
    records = runner_records(
        tmp_path,
        "backend=transformers",
        "model=custom",
        f"model.path={checkpoint_folder}",
    )
    out = tmp_path / "lm_eval"
    done = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run"]
        + ["--model", "hf"]
        + ["--model_args", f"pretrained={checkpoint_folder},dtype=float32"]
        + ["--include_path", str(ROOT / "tasks"), "--tasks", "benchbench_passkey"]
        + ["--metadata", json.dumps(SWEEP), "--device", "cpu", "--batch_size", "1"]
        + ["--output_path", str(out), "--log_samples"],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (logged,) = out.rglob("samples_benchbench_passkey_*.jsonl")
    samples = [json.loads(line) for line in logged.read_text().splitlines()]

    assert len(samples) == len(records) == 4
    for sample in samples:
        record = records.loc[sample["doc"]["cell_id"]]
        assert sample["doc"]["prompt_sha256"] == record.prompt_sha256
        assert sample["resps"][0][0] == record.output.split("\n")[0]
        assert sample["exact_match"] == record.value


@pytest.mark.slow
def test_lm_eval_loglikelihood_under_yarn_is_the_backends_own(tmp_path, smollm2):
    """A multiple-choice task of lm-eval's kind, scored with YaRN x2 applied."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from benchbench.config import ScalingConfig
    from benchbench.lmeval import BenchbenchLM
    from benchbench.models import read_model_info
    from benchbench.scaling import reference, resolve

    data = tmp_path / "data.jsonl"
    rows = [
        {"question": "The capital of France is", "choices": [" Paris", " Rome"]},
        {"question": "Two plus two equals", "choices": [" four", " seven"]},
    ]
    data.write_text("".join(json.dumps({**r, "answer": 0}) + "\n" for r in rows))
    (tmp_path / "tiny_choice.yaml").write_text(
        "task: tiny_choice\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        "doc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n"
    )
    lm = BenchbenchLM(["scaling=yarn", "scaling.factor=2", "backend.n_ctx=1024"])
    # the scaled model rotates as benchbench's reference says YaRN x2 does
    rope, _ = read_model_info(lm.model_path)
    scaling = resolve(ScalingConfig(method="yarn", factor=2.0), rope)
    assert np.allclose(
        lm.rope["inv_freq"], reference.inv_freq(scaling, rope), rtol=1e-6
    )

    out = simple_evaluate(
        model=lm,
        tasks=["tiny_choice"],
        task_manager=TaskManager(include_path=str(tmp_path)),
        log_samples=True,
    )
    samples = out["samples"]["tiny_choice"]
    assert len(samples) == 2
    for sample in samples:
        assert len(sample["arguments"]) == 2
        # lm-eval's requests: the context, then target delimiter and choice
        for (context, continuation), (response,) in zip(
            sample["arguments"], sample["resps"], strict=True
        ):
            context_ids, continuation_ids = lm._encode_pair(context, continuation)
            scores = lm.backend.score(context_ids + continuation_ids)
            want = float(np.sum(scores.logprobs[len(context_ids) - 1 :]))
            assert float(response[0]) == pytest.approx(want, abs=1e-6)
    # and the unscaled model scores the same text differently
    plain = float(
        np.sum(smollm2.score(lm.tok_encode("Two plus two equals four")).logprobs)
    )
    scaled = float(
        np.sum(lm.backend.score(lm.tok_encode("Two plus two equals four")).logprobs)
    )
    assert plain != pytest.approx(scaled, abs=1e-4)
    lm.backend.close()


@pytest.mark.slow
def test_lm_eval_command_line_takes_the_benchbench_model(tmp_path):
    out = tmp_path / "lm_eval"
    done = subprocess.run(
        [sys.executable, "-m", "benchbench.lmeval", "run", "--model", "benchbench"]
        + [
            "--model_args",
            "model=smollm2,scaling=yarn,scaling.factor=2,backend.n_ctx=1024",
        ]
        + ["--include_path", str(ROOT / "tasks"), "--tasks", "benchbench_passkey"]
        + ["--metadata", json.dumps({**SWEEP, "context_lengths": [256]})]
        + ["--output_path", str(out), "--log_samples"],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = out.rglob("results_*.json")
    summary = json.loads(results.read_text())
    assert summary["config"]["model_args"]["scaling"] == "yarn"
    assert summary["n-samples"]["benchbench_passkey"]["effective"] == 2
    (logged,) = out.rglob("samples_benchbench_passkey_*.jsonl")
    samples = [json.loads(line) for line in logged.read_text().splitlines()]
    # the reported score is the mean of the per-sample exact matches
    assert summary["results"]["benchbench_passkey"][
        "exact_match,none"
    ] == pytest.approx(np.mean([s["exact_match"] for s in samples]))
