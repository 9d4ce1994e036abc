"""Train a reference model, or find it already trained in the cache.

A checkpoint is a Hugging Face folder (config, safetensors weights, tokenizer)
plus ``reference.json``: the settings it was trained with, the losses before
and after, the time it took and the library versions. Its folder name is a
hash of everything that shapes the weights (the training settings, the
encoding, the corpus and ``CHECKPOINT_FORMAT``), so a second run with the same
settings reuses it and any change trains a new one.

Training is seeded (torch, the data mix and the passkey keys), single-process
and on the CPU; on 2 cores the default settings take a few minutes a scheme.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchbench.config import EncodingConfig, ReferenceConfig
from benchbench.corpus import Corpus
from benchbench.errors import ConfigError
from benchbench.reference import META
from benchbench.reference.architectures import DIFFERENCES, MODEL_TYPES, model_config
from benchbench.reference.data import IGNORE, PASSKEY_TEMPLATES, TrainingMix
from benchbench.reference.tokenizer import train_tokenizer

log = logging.getLogger(__name__)

# bump when the training code changes what a checkpoint of the same settings holds
CHECKPOINT_FORMAT = 2

# held-out windows scored before and after training
HELDOUT_WINDOWS = 8
WARMUP_FRACTION = 0.05


def cache_root(reference: ReferenceConfig) -> Path:
    if reference.cache_dir:
        return Path(reference.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "benchbench" / "reference"


def checkpoint_key(
    reference: ReferenceConfig,
    encoding: EncodingConfig,
    corpus_sha256: str,
    passkey_sha256: str = "",
) -> str:
    """A short hash of everything that shapes the trained weights."""
    settings = dataclasses.asdict(reference)
    settings.pop("cache_dir")
    parts = {
        "format": CHECKPOINT_FORMAT,
        "reference": settings,
        "encoding": dataclasses.asdict(encoding),
        "corpus_sha256": corpus_sha256,
        "passkey_sha256": passkey_sha256,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def passkey_sha256(root: Path) -> str:
    """sha256 of the passkey prompt pieces and filler that training sequences are built from."""
    digest = hashlib.sha256()
    for path in sorted((root / PASSKEY_TEMPLATES).glob("*.txt")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def checkpoint_folder(
    reference: ReferenceConfig, encoding: EncodingConfig, corpus: Corpus, root: Path
) -> Path:
    key = checkpoint_key(reference, encoding, corpus.sha256, passkey_sha256(root))
    return cache_root(reference) / f"{encoding.scheme}-{key}"


def read_meta(folder: Path) -> dict:
    return json.loads((folder / META).read_text(encoding="utf-8"))


def ensure_trained(
    reference: ReferenceConfig,
    encoding: EncodingConfig,
    corpus: Corpus,
    root: Path,
    retrain: bool = False,
) -> Path:
    """The checkpoint folder for these settings, training it first if it is not cached."""
    folder = checkpoint_folder(reference, encoding, corpus, root)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            "model.reference.cache_dir",
            f"cannot create '{folder.parent}' ({err.strerror}); point it at a writable folder",
        ) from None
    # two processes asking for one checkpoint: the second waits and reuses it
    with _locked(folder.with_suffix(".lock")):
        if (folder / META).is_file() and not retrain:
            log.info("reference model %s: cached in %s", encoding.scheme, folder)
            return folder
        partial = folder.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        train(reference, encoding, corpus, root, partial)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    return folder


@contextlib.contextmanager
def _locked(path: Path):
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def training_text(reference: ReferenceConfig, corpus: Corpus) -> tuple[str, str]:
    """The held-out head of the corpus and the rest, which is what training reads."""
    cut = reference.heldout_characters
    if len(corpus.text) - cut < 20 * reference.context_length:
        raise ConfigError(
            "model.reference.heldout_characters",
            f"leaves {max(0, len(corpus.text) - cut)} of the corpus's {len(corpus.text)} characters "
            "for training; lower it or give a longer corpus",
        )
    return corpus.text[:cut], corpus.text[cut:]


def train(
    reference: ReferenceConfig,
    encoding: EncodingConfig,
    corpus: Corpus,
    root: Path,
    out: Path,
) -> dict:
    """Train one reference model into ``out``; return what ``reference.json`` says."""
    import torch
    from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

    started = time.perf_counter()
    torch.manual_seed(reference.seed)
    rng = np.random.default_rng(reference.seed)
    heldout, text = training_text(reference, corpus)

    # tokenizer and data
    tokenizer = train_tokenizer(text, reference.vocab_size)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    passkey_sequences = math.ceil(
        reference.steps * reference.batch_size * reference.passkey_fraction * 1.1
    )
    mix = TrainingMix(
        tokenizer,
        ids,
        reference.context_length,
        passkey_sequences,
        reference.seed,
        root,
    )
    heldout_ids = tokenizer(heldout, add_special_tokens=False)["input_ids"]
    windows = min(HELDOUT_WINDOWS, len(heldout_ids) // reference.context_length)
    heldout_batch = mix.windows(windows, heldout_ids) if windows else None

    # model and optimizer
    config = model_config(reference, encoding, tokenizer.bos_token_id)
    model = AutoModelForCausalLM.from_config(config)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=reference.learning_rate,
        betas=(0.9, 0.95),
        weight_decay=0.1,
    )
    schedule = get_cosine_schedule_with_warmup(
        optimizer,
        num_warmup_steps=max(1, int(WARMUP_FRACTION * reference.steps)),
        num_training_steps=reference.steps,
    )
    before = _heldout_loss(model, heldout_batch)

    model.train()
    losses = []
    bar = tqdm(range(reference.steps), desc=f"training {encoding.scheme}", unit="step")
    for step in bar:
        batch = mix.batch(reference.batch_size, reference.passkey_fraction, rng)
        loss = mixed_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    bar.close()
    after = _heldout_loss(model, heldout_batch)

    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "encoding": dataclasses.asdict(encoding),
        "model_type": MODEL_TYPES[encoding.scheme],
        "differences": DIFFERENCES[encoding.scheme],
        "reference": {
            k: v for k, v in dataclasses.asdict(reference).items() if k != "cache_dir"
        },
        "corpus": corpus.provenance(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "training_tokens": reference.steps
        * reference.batch_size
        * reference.context_length,
        "passkey_sequences": len(mix.passkeys),
        "heldout_windows": windows,
        "heldout_loss_before": before,
        "heldout_loss_after": after,
        "train_loss_first": float(np.mean(losses[:10])),
        "train_loss_last": float(np.mean(losses[-10:])),
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "torch": version("torch"),
            "transformers": version("transformers"),
        },
    }
    (out / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info(
        "trained %s in %.0f s: held-out loss %.3f -> %.3f",
        encoding.scheme,
        meta["seconds"],
        before,
        after,
    )
    return meta


def mixed_loss(model, batch):
    """Mean next-token loss of the corpus rows plus that of the passkey rows' scored tokens.

    The two are averaged separately and added, so that the few needle and
    answer tokens weigh as much as the many corpus tokens.
    """
    import torch

    logits = model(input_ids=torch.from_numpy(batch.input_ids)).logits
    # position t predicts token t + 1
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        torch.from_numpy(batch.labels[:, 1:]).reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(len(batch.labels), -1)
    scored = torch.from_numpy(batch.labels[:, 1:] != IGNORE)
    total = 0.0
    for rows in (~batch.passkey, batch.passkey):
        mask = scored & torch.from_numpy(rows)[:, None]
        if mask.any():
            total = total + per_token[mask].mean()
    return total


def _heldout_loss(model, batch) -> float | None:
    """Mean next-token loss (nats) on the held-out windows."""
    if batch is None:
        return None
    import torch

    model.eval()
    with torch.inference_mode():
        loss = model(
            input_ids=torch.from_numpy(batch.input_ids),
            labels=torch.from_numpy(batch.labels),
        ).loss
    return float(loss)
