"""A benchbench backend as an lm-eval model, RoPE scaling included.

    from lm_eval import simple_evaluate
    from benchbench.lmeval import BenchbenchLM

    lm = BenchbenchLM(["scaling=yarn", "scaling.factor=2"])
    simple_evaluate(model=lm, tasks=[...])

The overrides are benchbench's own (``conf/``): model, backend, scaling and
``backend.n_ctx``. The model is loaded, checked and scaled exactly as for
``python -m benchbench``, and its read-back RoPE is checked against
benchbench's reference before the first request.

Unlike lm-eval's own models, nothing is truncated: a request longer than the
context is an error naming ``backend.n_ctx``. Decoding is greedy only.
"""

import logging

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from benchbench.backends import open_backend
from benchbench.backends.llama_cpp import check_model_matches
from benchbench.config import Settings, to_settings
from benchbench.errors import BackendError, ConfigError
from benchbench.models import read_model_info

log = logging.getLogger(__name__)


def compose_settings(overrides: list[str]) -> Settings:
    """benchbench's config with ``overrides``, validated; bad input raises ``ConfigError``."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from benchbench.cli import CONFIG_DIR, one_line

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError("overrides", one_line(err)) from None
    return to_settings(cfg)


def overrides_of(arguments: dict) -> list[str]:
    """benchbench overrides from lm-eval's parsed ``model_args`` (``{"scaling": "yarn"}``)."""
    return [
        f"{key}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in arguments.items()
    ]


@register_model("benchbench")
class BenchbenchLM(TemplateLM):
    """lm-eval's model interface over one benchbench backend."""

    def __init__(self, overrides: list[str] | None = None):
        super().__init__()
        from benchbench.corpus import load_corpus
        from benchbench.runner import check_scaling, model_folder_or_file

        settings = compose_settings(overrides or [])
        self.settings = settings
        # a reference model is trained here on first use (model=reference)
        model_path = model_folder_or_file(settings, load_corpus(settings.corpus))
        rope, _ = read_model_info(model_path)
        check_model_matches(
            rope, settings.model.trained_context_length, settings.model.rope_theta
        )
        check_scaling(settings, rope)
        # without backend.n_ctx: the context the scaling extends the model to
        n_ctx = settings.backend.n_ctx or int(
            rope.trained_context_length * settings.scaling.factor
        )
        self.model_path = model_path
        self.backend = open_backend(
            model_path, rope, settings.backend, settings.scaling, n_ctx
        )
        # the engine's RoPE, checked against the reference when it loaded
        self.rope = self.backend.effective_rope()
        log.info(
            "benchbench model %s on %s, scaling=%s x%g, n_ctx=%d",
            settings.model.name,
            settings.backend.name,
            settings.scaling.method,
            settings.scaling.factor,
            n_ctx,
        )

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config=None):
        """``model_args`` as text: ``model=smollm2,scaling=yarn,scaling.factor=2``."""
        return cls([part for part in arg_string.split(",") if part.strip()])

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config=None):
        """``--model_args model=smollm2,scaling=yarn`` on lm-eval's command line, parsed to a dict.

        lm-eval's batch size and device are not used: requests run one at a
        time, on the device that ``backend`` configures.
        """
        return cls(overrides_of(arg_dict))

    def task_metadata(self) -> dict:
        """What benchbench_passkey needs to build its prompts in this model's tokens."""
        if self.model_path.is_file():
            return {"gguf": str(self.model_path)}
        return {"tokenizer": str(self.model_path)}

    # tokens

    @property
    def eot_token_id(self) -> int:
        eos = self.backend.eos_token_id
        return eos if eos is not None else self.backend.bos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.backend.bos_token_id
        return bos if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self.backend.n_ctx

    def tok_encode(self, string: str, add_special_tokens=None, **kwargs) -> list[int]:
        ids = self.backend.tokenize(string, special=True)
        bos = self.backend.bos_token_id
        if add_special_tokens is False or bos is None or ids[:1] == [bos]:
            return ids
        if add_special_tokens or self.backend.adds_bos:
            return [bos, *ids]
        return ids

    def tok_decode(self, tokens) -> str:
        return self.backend.detokenize(tokens)

    # requests

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        results = []
        for _, context, continuation in tqdm(
            requests, desc="benchbench loglikelihood", disable=disable_tqdm
        ):
            results.append(self._score_continuation(context, continuation))
        return results

    def _score_continuation(self, context, continuation) -> tuple[float, bool]:
        tokens = [*context, *continuation]
        self.backend.check_fits(len(tokens))
        scores = self.backend.score(tokens)
        # entry i scores token i + 1: the continuation's rows are the last ones
        rows = slice(len(context) - 1, len(tokens) - 1)
        logprob = float(np.sum(scores.logprobs[rows]))
        greedy = bool(np.array_equal(scores.argmax[rows], continuation))
        return logprob, greedy

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        """Log-likelihood of whole texts in windows of the context, as lm-eval defines it."""
        results = []
        for (text,) in tqdm(
            [r.args for r in requests], desc="benchbench rolling", disable=disable_tqdm
        ):
            windows = map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(text, add_special_tokens=False),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            )
            results.append(sum(self._score_continuation(c, t)[0] for c, t in windows))
        return results

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        outputs = []
        for context, gen_kwargs in tqdm(
            [r.args for r in requests], desc="benchbench generate", disable=disable_tqdm
        ):
            kwargs = dict(gen_kwargs)
            if kwargs.get("do_sample") or kwargs.get("temperature", 0.0) > 0:
                raise BackendError(
                    "benchbench decodes greedily only; set do_sample=false and temperature=0"
                )
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else [s for s in until if s]
            max_new = int(kwargs.get("max_gen_toks", 256))
            generation = self.backend.generate(
                self.tok_encode(context), max_new, stop=until
            )
            text = generation.text
            # lm-eval's convention: the continuation ends before the first stop string
            for stop in until:
                text = text.split(stop)[0]
            outputs.append(text)
        return outputs
