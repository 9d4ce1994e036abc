"""``python -m benchbench.train``: train a reference model now, or say where it is cached.

A run with ``model=reference`` trains its model on first use; this command
does it ahead of time (before a sweep on many machines, say) and prints what
the training measured::

    python -m benchbench.train encoding=alibi
    python -m benchbench.train encoding=rope model.reference.steps=200 retrain=true

The checkpoint lands in ``model.reference.cache_dir`` under a hash of its
settings; ``retrain=true`` trains it again even when it is cached.
"""

import json
import logging
import sys
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from benchbench.cli import compose_or_fail, fail
from benchbench.config import (
    BackendConfig,
    CorpusConfig,
    EncodingConfig,
    ModelConfig,
    ScalingConfig,
    check_encoding,
)
from benchbench.corpus import load_corpus
from benchbench.errors import BenchError, ConfigError
from benchbench.runner import PROJECT_ROOT


@dataclass
class TrainCommand:
    model: ModelConfig = field(default_factory=ModelConfig)
    encoding: EncodingConfig | None = None
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    # the backend the model will be evaluated with (model=reference selects
    # transformers); training itself runs on the CPU
    backend: BackendConfig = field(default_factory=BackendConfig)
    retrain: bool = False

    def validate(self) -> None:
        if self.model.reference is None:
            raise ConfigError(
                "model", "only model=reference is trained here; it is the default"
            )
        self.model.validate()
        self.corpus.validate()
        check_encoding(self.model, self.encoding, ScalingConfig(), self.backend)


ConfigStore.instance().store(name="train_schema", node=TrainCommand)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="[%(name)s] %(message)s"
    )
    try:
        cmd: TrainCommand = compose_or_fail(
            "train", TrainCommand, sys.argv[1:] if argv is None else argv, __doc__
        )
        from benchbench.reference.train import ensure_trained, read_meta

        corpus = load_corpus(cmd.corpus)
        folder = ensure_trained(
            cmd.model.reference, cmd.encoding, corpus, PROJECT_ROOT, cmd.retrain
        )
        meta = read_meta(folder)
    except BenchError as err:
        fail(str(err))
    summary = {
        "checkpoint": str(folder),
        **{
            key: meta[key]
            for key in (
                "encoding",
                "model_type",
                "parameters",
                "training_tokens",
                "heldout_loss_before",
                "heldout_loss_after",
                "seconds",
            )
        },
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
