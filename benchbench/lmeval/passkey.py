"""The passkey task's samples as an lm-eval dataset.

lm-eval feeds a model text, not token ids, so each sample is benchbench's
prompt (built token by token for an exact length, see
``benchbench/tasks/prompt.py``) turned back into text. That text is checked to
give the same ids when tokenized again; a tokenizer for which it does not is
refused, since the model would otherwise see another prompt than benchbench's.

The sweep comes from benchbench's own config (``conf/``), changed through
lm-eval's ``--metadata``: ``context_lengths``, ``depths``, ``samples``,
``seed``, ``prompt_format``, ``digits``. The tokenizer is the evaluated
model's: ``pretrained`` or ``tokenizer`` (a Hugging Face folder or name, as
lm-eval's ``hf`` model takes it), ``gguf`` (a GGUF file, read by llama.cpp), or
``model`` / ``model.path`` (benchbench's model config, as ``--model benchbench``
takes it).
"""

import hashlib
import logging
from pathlib import Path

from benchbench.backends.llama_cpp import LlamaVocab, open_vocab
from benchbench.backends.transformers import HFTokenizer
from benchbench.config import Settings, to_settings
from benchbench.errors import ConfigError
from benchbench.runner import PROJECT_ROOT
from benchbench.tasks.base import CorpusTokens
from benchbench.tasks.passkey import PasskeyTask
from benchbench.tasks.retrieval import first_number

log = logging.getLogger(__name__)

# lm-eval metadata keys and the benchbench settings they change
METADATA_KEYS = {
    "context_lengths": "sweep.context_lengths",
    "depths": "sweep.depths",
    "samples": "sweep.samples",
    "seed": "seed",
    "prompt_format": "task.passkey.prompt_format",
    "digits": "task.passkey.digits",
}


class GGUFTokenizer(LlamaVocab):
    """The same, from a GGUF file's vocabulary in llama.cpp, as the llama.cpp backend tokenizes."""

    def __init__(self, path: str):
        self._llm = open_vocab(Path(path))

    def close(self) -> None:
        self._llm.close()


def passkey_settings(metadata: dict) -> Settings:
    """benchbench's config with ``task=[passkey]`` and the metadata's changes."""
    from hydra import compose, initialize_config_dir

    from benchbench.cli import CONFIG_DIR

    overrides = ["task=[passkey]"]
    for key, setting in METADATA_KEYS.items():
        if key in metadata:
            value = metadata[key]
            text = (
                f"[{','.join(map(str, value))}]" if isinstance(value, list) else value
            )
            overrides.append(f"{setting}={text}")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return to_settings(cfg)


def open_tokenizer(metadata: dict):
    if metadata.get("gguf"):
        return GGUFTokenizer(metadata["gguf"])
    name = metadata.get("tokenizer") or metadata.get("pretrained")
    benchbench_model = {k: v for k, v in metadata.items() if k.split(".")[0] == "model"}
    if not name and benchbench_model:
        # lm-eval's `--model benchbench --model_args model=...`: that model's file
        from benchbench.corpus import load_corpus
        from benchbench.lmeval.model import compose_settings, overrides_of
        from benchbench.models import resolve_model_path
        from benchbench.runner import model_folder_or_file

        settings = compose_settings(overrides_of(benchbench_model))
        path = (
            model_folder_or_file(settings, load_corpus(settings.corpus))
            if settings.model.reference is not None
            # either backend's file: a GGUF or a checkpoint folder
            else resolve_model_path(settings.model, "transformers")
        )
        return GGUFTokenizer(str(path)) if path.is_file() else HFTokenizer(str(path))
    if not name:
        raise ConfigError(
            "metadata",
            "benchbench_passkey sizes its prompts in the model's tokens; give --model_args "
            "pretrained=... (hf) or model=... (benchbench), or --metadata '{\"tokenizer\": ...}' "
            "or '{\"gguf\": ...}'",
        )
    return HFTokenizer(str(name))


def build_docs(metadata: dict) -> list[dict]:
    """One lm-eval document per passkey cell, in benchbench's cell order."""
    settings = passkey_settings(metadata)
    tokenizer = open_tokenizer(metadata)
    try:
        return _docs(settings, tokenizer)
    finally:
        tokenizer.close()


def _docs(settings: Settings, tokenizer) -> list[dict]:
    task = PasskeyTask(settings.task.passkey, settings.seed, PROJECT_ROOT)
    # the passkey haystack is filler; it reads nothing from the corpus
    task.prepare(tokenizer, CorpusTokens([], [], []), settings.sweep)

    docs = []
    for cell in task.cells(settings.sweep):
        ids = task.prompt(cell)
        bos = tokenizer.bos_token_id
        # the model adds its BOS itself; the text carries what comes after it
        body = ids[1:] if bos is not None and ids[:1] == [bos] else ids
        text = tokenizer.detokenize(body)
        if tokenizer.tokenize(text, special=True) != body:
            raise ConfigError(
                "metadata",
                f"the passkey prompt for {cell.id} does not survive a text round trip in this "
                "tokenizer, so lm-eval would feed other ids than benchbench; use benchbench directly",
            )
        fields = task.fields(cell)
        docs.append(
            {
                "input": text,
                "target": task.target(fields),
                "cell_id": cell.id,
                "context_length": cell.context_length,
                "depth": cell.depth,
                "sample": cell.sample,
                "prompt_tokens": len(ids),
                "prompt_sha256": hashlib.sha256(
                    ",".join(map(str, ids)).encode()
                ).hexdigest(),
                "max_new_tokens": settings.task.passkey.max_new_tokens,
            }
        )
    log.info("benchbench_passkey: %d prompts", len(docs))
    return docs


def passkey_dataset(**metadata) -> dict:
    """lm-eval's ``custom_dataset`` hook: the documents as a ``test`` split."""
    import datasets

    return {"test": datasets.Dataset.from_list(build_docs(metadata))}


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """Exact match of the first number in the continuation, as benchbench scores it."""
    return {"exact_match": float(first_number(results[0]) == doc["target"])}
