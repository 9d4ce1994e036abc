"""Reference models: tokenizer, training mix, training, caching, and runs through the CLI."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchbench.config import CorpusConfig, EncodingConfig, ReferenceConfig
from benchbench.corpus import load_corpus
from benchbench.reference.data import IGNORE, TrainingMix
from benchbench.reference.tokenizer import train_tokenizer
from benchbench.reference.train import (
    checkpoint_folder,
    checkpoint_key,
    ensure_trained,
    passkey_sha256,
    read_meta,
    train,
    training_text,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# big enough for the passkey template (about 115 tokens) and a little filler
TINY = ReferenceConfig(
    context_length=160,
    layers=2,
    width=32,
    heads=2,
    vocab_size=400,
    steps=30,
    batch_size=4,
    learning_rate=0.003,
)


def encoding(scheme: str) -> EncodingConfig:
    return EncodingConfig(scheme, 10000.0 if scheme == "rope" else None)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(CorpusConfig())


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_tokenizer(training_text(TINY, corpus)[1], 400)


def test_tokenizer_round_trips_any_text_and_splits_digits(tokenizer):
    text = "The pass key is 90210. Ünïcödé ½ — tabs\tand\nlines"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    digits = tokenizer(" 90210", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(digits) == ["Ġ", "9", "0", "2", "1", "0"]
    assert len(tokenizer) == 400
    # the tokenizer adds its BOS itself, as the backends expect
    assert tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id


def test_training_never_reads_the_heldout_head(corpus):
    heldout, text = training_text(TINY, corpus)
    assert heldout + text == corpus.text
    assert len(heldout) == TINY.heldout_characters


def test_training_sequences_have_the_training_length(corpus, tokenizer):
    _, text = training_text(TINY, corpus)
    ids = tokenizer(text[:50_000], add_special_tokens=False)["input_ids"]
    mix = TrainingMix(tokenizer, ids, 160, 22, seed=0, root=PROJECT_ROOT)
    batch = mix.batch(40, 0.5, np.random.default_rng(0))
    assert batch.input_ids.shape == (40, 160)
    assert (batch.input_ids[:, 0] == tokenizer.bos_token_id).all()
    assert 5 < batch.passkey.sum() < 35
    # corpus rows are scored everywhere
    assert (batch.labels[~batch.passkey] != IGNORE).all()
    # passkey rows on their needle and their answer " ddddd." only
    needle = (PROJECT_ROOT / "tasks/passkey/needle.txt").read_text()
    for ids_row, labels in zip(
        batch.input_ids[batch.passkey], batch.labels[batch.passkey], strict=True
    ):
        scored = np.flatnonzero(labels != IGNORE)
        breaks = np.flatnonzero(np.diff(scored) > 1)
        assert len(breaks) == 1, "two scored spans: the needle, then the answer"
        needle_span, answer_span = np.split(scored, breaks + 1)
        answer = tokenizer.decode(ids_row[answer_span])
        assert len(answer_span) == 7 and answer[0] == " " and answer.endswith(".")
        key = answer.strip(" .")
        assert key.isdigit() and len(key) == 5
        # the needle is scored, the filler around it is not
        assert tokenizer.decode(ids_row[needle_span]) == needle.format(passkey=key)


def test_training_keys_differ_from_evaluation_keys(corpus, tokenizer):
    from benchbench.config import PasskeyConfig
    from benchbench.tasks.passkey import PasskeyTask

    _, text = training_text(TINY, corpus)
    ids = tokenizer(text[:50_000], add_special_tokens=False)["input_ids"]
    mix = TrainingMix(tokenizer, ids, 160, 200, seed=0, root=PROJECT_ROOT)
    trained = {
        tokenizer.decode(labels[labels != IGNORE]).strip(" .")
        for labels in mix.passkeys[:, 1]
    }
    task = PasskeyTask(PasskeyConfig(), 1234, PROJECT_ROOT)
    from benchbench.tasks.base import Cell

    evaluated = {
        task.fields(Cell("passkey", 160, d, s))["passkey"]
        for d in (0.0, 0.5, 1.0)
        for s in range(20)
    }
    assert len(trained) == 200
    assert not trained & evaluated


@pytest.mark.parametrize("scheme", ["sinusoidal", "learned", "rope", "alibi", "nope"])
def test_a_short_training_run_reduces_the_loss(tmp_path, corpus, scheme):
    meta = train(TINY, encoding(scheme), corpus, PROJECT_ROOT, tmp_path / "ckpt")
    assert meta["heldout_loss_after"] < meta["heldout_loss_before"] - 0.4
    assert meta["train_loss_last"] < meta["train_loss_first"]
    # a fresh model guesses about uniformly over the 400 ids
    assert meta["heldout_loss_before"] == pytest.approx(np.log(400), abs=0.5)
    saved = json.loads((tmp_path / "ckpt" / "reference.json").read_text())
    assert saved["encoding"]["scheme"] == scheme
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()


def test_training_is_seeded(tmp_path, corpus):
    short = dataclasses.replace(TINY, steps=5)
    a = train(short, encoding("alibi"), corpus, PROJECT_ROOT, tmp_path / "a")
    b = train(short, encoding("alibi"), corpus, PROJECT_ROOT, tmp_path / "b")
    assert a["heldout_loss_after"] == b["heldout_loss_after"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()


def test_the_cache_key_covers_what_shapes_the_weights(corpus):
    rope = encoding("rope")
    key = checkpoint_key(TINY, rope, corpus.sha256)
    assert key == checkpoint_key(TINY, rope, corpus.sha256)
    # where the cache lives does not change the weights
    moved = dataclasses.replace(TINY, cache_dir="/elsewhere")
    assert checkpoint_key(moved, rope, corpus.sha256) == key
    changed = [
        checkpoint_key(dataclasses.replace(TINY, steps=31), rope, corpus.sha256),
        checkpoint_key(dataclasses.replace(TINY, seed=1), rope, corpus.sha256),
        checkpoint_key(TINY, EncodingConfig("rope", 500000.0), corpus.sha256),
        checkpoint_key(TINY, encoding("nope"), corpus.sha256),
        checkpoint_key(TINY, rope, "0" * 64),
        checkpoint_key(TINY, rope, corpus.sha256, passkey_sha256(PROJECT_ROOT)),
    ]
    assert key not in changed and len(set(changed)) == len(changed)


def test_a_cached_checkpoint_is_reused(tmp_path, corpus):
    cached = dataclasses.replace(TINY, steps=5, cache_dir=str(tmp_path))
    folder = ensure_trained(cached, encoding("nope"), corpus, PROJECT_ROOT)
    assert folder == checkpoint_folder(cached, encoding("nope"), corpus, PROJECT_ROOT)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    again = ensure_trained(cached, encoding("nope"), corpus, PROJECT_ROOT)
    assert again == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert read_meta(folder)["reference"]["steps"] == 5


# runs through the command line


def tiny_overrides(cache: Path) -> list[str]:
    settings = dataclasses.asdict(TINY) | {"cache_dir": str(cache)}
    return [f"model.reference.{k}={v}" for k, v in settings.items()]


def benchbench(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchbench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.slow
def test_learned_positions_are_refused_past_their_table(tmp_path):
    result = benchbench(
        "model=reference",
        "encoding=learned",
        *tiny_overrides(tmp_path / "cache"),
        "task=[passkey,perplexity]",
        "sweep=reference",
        "sweep.context_lengths=[160,320]",
        "sweep.depths=[0.5]",
        "sweep.samples=2",
        f"results_dir={tmp_path / 'results'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reference-learned | transformers | encoding=learned" in result.stdout
    (run_dir,) = (tmp_path / "results").glob("*/")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    records = pd.read_json(run_dir / "records.jsonl", lines=True)
    assert set(records.encoding) == {"learned"}
    inside = records[records.context_length == 160]
    past = records[records.context_length == 320]
    assert inside.value.notna().all() and inside.refused.isna().all()
    # every metric of every cell past the table (2 passkey samples, 2
    # perplexity windows): no value, and the reason
    assert sorted(past.metric) == ["exact_match"] * 2 + ["nll"] * 2 + ["perplexity"] * 2
    assert past.value.isna().all()
    assert past.refused.str.contains("past the model's learned table of 160").all()
    table = result.stdout.split("records in")[1]
    assert table.count("refused") == 2


@pytest.mark.slow
def test_rope_reference_runs_under_yarn_and_reuses_its_checkpoint(tmp_path):
    common = [
        "model=reference",
        *tiny_overrides(tmp_path / "cache"),
        "task=[perplexity]",
        "sweep.context_lengths=[160,320]",
        f"results_dir={tmp_path / 'results'}",
    ]
    first = benchbench(*common, "scaling=yarn", "scaling.factor=2")
    assert first.returncode == 0, first.stderr[-3000:]
    second = benchbench(*common, "scaling=linear", "scaling.factor=2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "training rope" in first.stderr
    assert "training rope" not in second.stderr
    assert "cached in" in second.stderr
    manifests = [
        json.loads(p.read_text())
        for p in sorted((tmp_path / "results").glob("*/manifest.json"))
    ]
    assert {m["scaling"]["method"] for m in manifests} == {"yarn", "linear"}
    for m in manifests:
        # the rotations read back from the model are the method's (checked at
        # load), and the original context is the training length
        assert m["scaling"]["original_context_length"] == 160
        assert len(m["backend"]["rope_effective"]["inv_freq"]) == 8


@pytest.mark.slow
def test_the_train_command_trains_once_then_finds_the_cache(tmp_path):
    def train_command(*extra):
        return subprocess.run(
            [sys.executable, "-m", "benchbench.train", "encoding=alibi"]
            + tiny_overrides(tmp_path)
            + list(extra),
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=600,
        )

    first = train_command()
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    assert summary["encoding"]["scheme"] == "alibi"
    assert summary["model_type"] == "bloom"
    assert summary["heldout_loss_after"] < summary["heldout_loss_before"]
    assert "training alibi" in first.stderr

    second = train_command()
    assert second.returncode == 0
    assert json.loads(second.stdout) == summary
    assert "training alibi" not in second.stderr and "cached in" in second.stderr

    again = train_command("retrain=true")
    assert "training alibi" in again.stderr
    # seeded: the retrained checkpoint measures the same
    assert (
        json.loads(again.stdout)["heldout_loss_after"] == summary["heldout_loss_after"]
    )

    wrong = train_command("scaling=yarn")
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("benchbench: error:")
