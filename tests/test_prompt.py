"""Retrieval prompts have exact token lengths and put the needle where asked."""

from pathlib import Path

import pytest

from benchbench.config import CorpusConfig, NeedleConfig, PasskeyConfig, SweepConfig
from benchbench.corpus import load_corpus
from benchbench.errors import ConfigError
from benchbench.runner import tokenize_corpus
from benchbench.tasks.needle import NeedleTask
from benchbench.tasks.passkey import PasskeyTask
from benchbench.tasks.prompt import PromptBuilder, PromptTemplate

ROOT = Path(__file__).resolve().parent.parent
SWEEP = SweepConfig(
    context_lengths=[200, 333, 1000], depths=[0.0, 0.3, 0.5, 1.0], samples=2
)


@pytest.fixture(scope="module")
def corpus_tokens(smollm2):
    return tokenize_corpus(smollm2, load_corpus(CorpusConfig()))


@pytest.mark.parametrize(
    "task_class, cfg", [(PasskeyTask, PasskeyConfig()), (NeedleTask, NeedleConfig())]
)
def test_prompts_have_exact_length(smollm2, corpus_tokens, task_class, cfg):
    task = task_class(cfg, seed=7, root=ROOT)
    task.prepare(smollm2, corpus_tokens, SWEEP)
    cells = task.cells(SWEEP)
    assert len(cells) == 3 * 4 * 2
    for cell in cells:
        prompt, fields = task._prompts[cell]
        assert len(prompt.tokens) + cfg.max_new_tokens == cell.context_length
        # the needle's own tokens sit at needle_position
        needle = smollm2.tokenize(task.template.needle.format(**fields))
        assert (
            prompt.tokens[prompt.needle_position : prompt.needle_position + len(needle)]
            == needle
        )
        assert prompt.tokens.count(needle[0]) >= 1


def test_depth_places_needle_at_sentence_boundary(smollm2, corpus_tokens):
    task = PasskeyTask(PasskeyConfig(), seed=1, root=ROOT)
    task.prepare(smollm2, corpus_tokens, SWEEP)
    for cell in task.cells(SWEEP):
        prompt, _ = task._prompts[cell]
        # filler sentences are short, so the snap moves the needle by a few tokens
        assert abs(prompt.depth_actual - cell.depth) * prompt.haystack_tokens <= 12
        if cell.depth == 0.0:
            assert prompt.depth_actual == 0.0
        # the token before the needle ends a sentence (or is the instruction)
        before = smollm2.detokenize(
            prompt.tokens[prompt.needle_position - 1 : prompt.needle_position]
        )
        assert before.rstrip(" ").endswith((".", "\n"))


def test_passkeys_are_seeded(smollm2, corpus_tokens):
    a = PasskeyTask(PasskeyConfig(), seed=3, root=ROOT)
    b = PasskeyTask(PasskeyConfig(), seed=3, root=ROOT)
    c = PasskeyTask(PasskeyConfig(), seed=4, root=ROOT)
    cells = a.cells(SWEEP)
    keys = [a.fields(cell)["passkey"] for cell in cells]
    assert keys == [b.fields(cell)["passkey"] for cell in cells]
    assert keys != [c.fields(cell)["passkey"] for cell in cells]
    assert all(len(k) == 5 and k.isdigit() for k in keys)
    assert len(set(keys)) > len(keys) // 2


def test_needle_samples_share_a_haystack_across_depths(smollm2, corpus_tokens):
    task = NeedleTask(NeedleConfig(), seed=1, root=ROOT)
    task.prepare(smollm2, corpus_tokens, SWEEP)
    cells = [c for c in task.cells(SWEEP) if c.context_length == 1000 and c.sample == 0]
    starts = {tuple(task.haystack(c)[0][:50]) for c in cells}
    assert len(starts) == 1
    other = [
        c for c in task.cells(SWEEP) if c.context_length == 1000 and c.sample == 1
    ][0]
    assert tuple(task.haystack(other)[0][:50]) not in starts


def test_chat_format_wraps_the_prompt(smollm2, corpus_tokens):
    task = PasskeyTask(PasskeyConfig(prompt_format="chat"), seed=1, root=ROOT)
    task.prepare(smollm2, corpus_tokens, SWEEP)
    prompt, _ = task._prompts[task.cells(SWEEP)[-1]]
    # the detokenizer leaves out control tokens such as <|im_start|> (id 1)
    text = smollm2.detokenize(prompt.tokens)
    assert "user\nSomewhere in the long text" in text
    assert text.endswith("What is the pass key?\nassistant\n The pass key is")
    assert len(prompt.tokens) + 10 == 1000
    # one BOS: the template opens with <|im_start|> and nothing is added to it
    assert prompt.tokens[0] == 1 and prompt.tokens[1] != 1
    assert prompt.tokens.count(1) == 3  # system, user and assistant turns


def test_too_short_length_is_refused(smollm2, corpus_tokens):
    task = PasskeyTask(PasskeyConfig(), seed=1, root=ROOT)
    with pytest.raises(ConfigError, match="sweep.context_lengths"):
        task.prepare(
            smollm2, corpus_tokens, SweepConfig(context_lengths=[40], depths=[0.5])
        )


def test_template_missing_placeholder_is_refused(tmp_path):
    for piece, text in {
        "instruction": "Find the key.\n",
        "needle": " The key is here.",
        "question": "\nWhat is the key?",
        "answer_prefix": " The key is",
    }.items():
        (tmp_path / f"{piece}.txt").write_text(text)
    with pytest.raises(
        ConfigError, match=r"needle.txt lacks the placeholder \{passkey\}"
    ):
        PromptTemplate.load(
            tmp_path,
            "completion",
            {"needle": {"passkey"}},
            key="task.passkey.template_dir",
        )
    (tmp_path / "needle.txt").write_text(" The key is {passkey} and {other}.")
    with pytest.raises(ConfigError, match=r"unknown placeholder \{other\}"):
        PromptTemplate.load(
            tmp_path,
            "completion",
            {"needle": {"passkey"}},
            key="task.passkey.template_dir",
        )


def test_bos_policy(smollm2):
    template = PromptTemplate.load(
        ROOT / "tasks/passkey", "completion", {"needle": {"passkey"}}, key="k"
    )
    never = PromptBuilder(smollm2, template, bos_policy="model")
    always = PromptBuilder(smollm2, template, bos_policy="always")
    fields = {"passkey": "12345"}
    haystack = smollm2.tokenize(" The grass is green." * 40)
    bounds = list(range(len(haystack) + 1))
    with_bos = always.build(haystack, bounds, fields, 200, 0.5)
    without = never.build(haystack, bounds, fields, 200, 0.5)
    # SmolLM2 asks for no BOS, so only "always" adds one, and the haystack
    # gives up that token to keep the length exact
    assert with_bos.tokens[0] == smollm2.bos_token_id != without.tokens[0]
    assert len(with_bos.tokens) == len(without.tokens) == 200
    assert with_bos.haystack_tokens == without.haystack_tokens - 1
