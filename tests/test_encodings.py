"""Each reference scheme's position signal, checked on the transformers model benchbench builds.

Values come from the papers' formulas, not from the code under test: the
sinusoids of Vaswani et al., ALiBi's geometric slopes (Press et al.), RoPE's
rotations (Su et al.), and NoPE's indifference to positions.
"""

import math

import pytest
import torch

from benchbench.config import EncodingConfig, ReferenceConfig
from benchbench.reference.architectures import MODEL_TYPES, model_config

SMALL = ReferenceConfig(context_length=64, layers=2, width=32, heads=4, vocab_size=300)


def build(scheme: str, reference: ReferenceConfig = SMALL):
    from transformers import AutoModelForCausalLM

    encoding = EncodingConfig(
        scheme=scheme, rope_theta=10000.0 if scheme == "rope" else None
    )
    torch.manual_seed(0)
    config = model_config(reference, encoding, bos=0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


def logits(model, ids, positions=None):
    kwargs = {} if positions is None else {"position_ids": positions}
    with torch.inference_mode():
        return model(input_ids=ids, **kwargs).logits


@pytest.mark.parametrize("scheme", sorted(MODEL_TYPES))
def test_each_scheme_builds_its_architecture(scheme):
    model = build(scheme)
    assert model.config.model_type == MODEL_TYPES[scheme]
    # same shape everywhere: parameters agree up to the position table
    # (learned: 64 x 32) and BLOOM's embedding LayerNorm (2 x 32)
    base = sum(p.numel() for p in build("nope").parameters())
    extra = {"learned": 64 * 32, "alibi": 2 * 32}.get(scheme, 0)
    assert sum(p.numel() for p in model.parameters()) == base + extra


def test_sinusoidal_values_at_known_positions():
    model = build("sinusoidal")
    # XGLM sizes its table by the sequence it is given, so ask for 0..100
    every = model.model.embed_positions(torch.arange(101)[None])[0]
    got = every[[0, 1, 7, 100]]
    # XGLM (fairseq) stores position p at row p + 2 (rows 0-1 are padding),
    # sines in the first half and cosines in the second, with frequencies
    # 10000^(-i / (half - 1)) for i = 0 .. half - 1
    half = 16
    for row, p in enumerate([0, 1, 7, 100]):
        for i in (0, 1, 5, 15):
            angle = (p + 2) * 10000 ** (-i / (half - 1))
            assert got[row, i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert got[row, half + i].item() == pytest.approx(math.cos(angle), abs=1e-5)
    # known values: position 0 is angle 2 in the fastest pair
    assert got[0, 0].item() == pytest.approx(0.9092974, abs=1e-6)
    assert got[0, half].item() == pytest.approx(-0.4161468, abs=1e-6)


def test_sinusoids_exist_past_the_training_length():
    model = build("sinusoidal")
    far = model.model.embed_positions(torch.arange(5001)[None])[0, 5000]
    assert far[0].item() == pytest.approx(math.sin(5002), abs=1e-4)


def test_alibi_slopes_for_eight_heads():
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    model = build("alibi", ReferenceConfig(width=64, heads=8, layers=1))
    mask = torch.ones(1, 5)
    alibi = build_alibi_tensor(mask, model.config.n_head, torch.float32)
    # shape (heads, 1, keys): head h adds slope_h * key position; by softmax's
    # shift invariance that is -slope_h * distance for every query
    slopes = alibi[:, 0, 1] - alibi[:, 0, 0]
    expected = [2.0**-k for k in range(1, 9)]
    assert slopes.tolist() == pytest.approx(expected, rel=1e-6)
    assert alibi[:, 0, 4].tolist() == pytest.approx([4 * s for s in expected])


def test_alibi_model_takes_no_position_ids():
    # its bias is built from the attention mask: the distance alone matters
    import inspect

    model = build("alibi")
    assert "position_ids" not in inspect.signature(model.forward).parameters


def rope_rotate(model, vectors, positions):
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    cos, sin = model.gpt_neox.rotary_emb(vectors, torch.tensor([positions]))
    # (batch, heads, seq, head_dim); the same vectors as queries and keys
    rotated, _ = apply_rotary_pos_emb(vectors, vectors, cos, sin)
    return rotated


def test_rope_rotation_preserves_norms():
    model = build("rope")
    torch.manual_seed(1)
    vectors = torch.randn(1, 1, 4, 8)
    rotated = rope_rotate(model, vectors, [0, 3, 250, 9999])
    assert torch.allclose(rotated.norm(dim=-1), vectors.norm(dim=-1), rtol=1e-5)
    # position 0 is not rotated at all
    assert torch.allclose(rotated[..., 0, :], vectors[..., 0, :], atol=1e-6)


def test_rope_scores_depend_only_on_the_distance():
    model = build("rope")
    torch.manual_seed(2)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    scores = {}
    for m, n in [(5, 2), (105, 102), (1003, 1000), (5, 3)]:
        qm = rope_rotate(model, q, [m])[0, 0, 0]
        kn = rope_rotate(model, k, [n])[0, 0, 0]
        scores[(m, n)] = float(qm @ kn)
    assert scores[(105, 102)] == pytest.approx(scores[(5, 2)], abs=1e-4)
    assert scores[(1003, 1000)] == pytest.approx(scores[(5, 2)], abs=1e-4)
    # a different distance gives a different score
    assert abs(scores[(5, 3)] - scores[(5, 2)]) > 1e-3


def test_nope_ignores_positions_entirely():
    model = build("nope")
    assert model.gpt_neox.rotary_emb.inv_freq.numel() == 0
    ids = torch.randint(1, 300, (1, 12))
    plain = logits(model, ids)
    shifted = logits(model, ids, torch.arange(12)[None] + 1000)
    scrambled = logits(model, ids, torch.randperm(12)[None])
    assert torch.equal(plain, shifted)
    assert torch.equal(plain, scrambled)
    # order still matters through the causal mask
    assert not torch.allclose(logits(model, ids.flip(1))[0, -1], plain[0, -1])


@pytest.mark.parametrize("scheme", ["learned", "sinusoidal"])
def test_absolute_schemes_change_under_a_shift(scheme):
    # the same check that NoPE passes fails for absolute positions: the test can tell
    model = build(scheme)
    ids = torch.randint(1, 300, (1, 12))
    shifted = logits(model, ids, torch.arange(12)[None] + 40)
    assert not torch.allclose(logits(model, ids), shifted, atol=1e-4)


def test_rope_is_unchanged_by_a_shift_but_not_by_a_scramble():
    model = build("rope")
    ids = torch.randint(1, 300, (1, 12))
    plain = logits(model, ids)
    assert torch.allclose(
        plain, logits(model, ids, torch.arange(12)[None] + 1000), atol=1e-4
    )
    assert not torch.allclose(
        plain, logits(model, ids, torch.randperm(12)[None]), atol=1e-4
    )


def test_learned_table_has_exactly_the_training_length():
    from benchbench.reference.architectures import position_limit

    model = build("learned")
    assert model.transformer.wpe.num_embeddings == 64
    assert position_limit("learned", model.config) == 64
    for scheme in ("sinusoidal", "rope", "alibi", "nope"):
        assert position_limit(scheme, build(scheme).config) is None
