"""One transformers architecture per position encoding, shaped alike.

Each scheme uses the well-kept Hugging Face model that implements it, so the
position code under test is the library's own, not benchbench's:

=============  ==========  ==================================================
scheme         model       where positions enter
=============  ==========  ==================================================
``learned``    GPT-2       a trained table of ``context_length`` rows, added
                           to the token embeddings
``sinusoidal`` XGLM        fixed sin/cos vectors added to the (sqrt(width)
                           scaled) token embeddings
``rope``       GPT-NeoX    queries and keys rotated by position in every layer
``nope``       GPT-NeoX    the same body with the rotary fraction set to 0:
                           nothing but the causal mask
``alibi``      BLOOM       -slope * distance added to each head's scores
=============  ==========  ==================================================

All five are pre-LayerNorm decoders with the same width, depth, heads, a 4x
GELU (tanh) MLP, biases, tied input and output embeddings and no dropout, so
the parameter counts agree up to the position table and BLOOM's LayerNorm on
the embeddings (which the architecture always has). What remains different is
written in ``DIFFERENCES`` and recorded with every checkpoint.
"""

from benchbench.config import EncodingConfig, ReferenceConfig

# transformers model_type per scheme
MODEL_TYPES = {
    "learned": "gpt2",
    "sinusoidal": "xglm",
    "rope": "gpt_neox",
    "nope": "gpt_neox",
    "alibi": "bloom",
}

# what the bodies do differently besides their positions
DIFFERENCES = {
    "learned": "",
    "sinusoidal": "token embeddings scaled by sqrt(width) before the sinusoids are added (XGLM, as Vaswani et al.)",
    "rope": "",
    "nope": "",
    "alibi": "a LayerNorm on the embeddings (BLOOM)",
}

ACTIVATION = "gelu_new"  # GELU with the tanh approximation, BLOOM's only choice
INIT_STD = 0.02


def model_config(reference: ReferenceConfig, encoding: EncodingConfig, bos: int):
    """The transformers config of a fresh reference model for ``encoding``."""
    from transformers import BloomConfig, GPT2Config, GPTNeoXConfig, XGLMConfig

    width, heads, layers = reference.width, reference.heads, reference.layers
    common = {
        "vocab_size": reference.vocab_size,
        "bos_token_id": bos,
        "eos_token_id": bos,
        "tie_word_embeddings": True,
    }
    scheme = encoding.scheme
    if scheme == "learned":
        return GPT2Config(
            n_positions=reference.context_length,
            n_embd=width,
            n_layer=layers,
            n_head=heads,
            n_inner=4 * width,
            activation_function=ACTIVATION,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            initializer_range=INIT_STD,
            **common,
        )
    if scheme == "sinusoidal":
        return XGLMConfig(
            # the sinusoids are computed for any position; this only sizes
            # the table XGLM precomputes (it grows on demand)
            max_position_embeddings=reference.context_length,
            d_model=width,
            num_layers=layers,
            attention_heads=heads,
            ffn_dim=4 * width,
            activation_function=ACTIVATION,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            layerdrop=0.0,
            init_std=INIT_STD,
            scale_embedding=True,
            pad_token_id=bos,
            decoder_start_token_id=bos,
            **common,
        )
    if scheme == "alibi":
        return BloomConfig(
            hidden_size=width,
            n_layer=layers,
            n_head=heads,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            initializer_range=INIT_STD,
            **common,
        )
    # rope and nope: GPT-NeoX with sequential (GPT-2 style) residuals
    return GPTNeoXConfig(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        hidden_act=ACTIVATION,
        use_parallel_residual=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        initializer_range=INIT_STD,
        max_position_embeddings=reference.context_length,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": encoding.rope_theta or 10000.0,
            # NoPE: no dimension of any head is rotated
            "partial_rotary_factor": 1.0 if scheme == "rope" else 0.0,
        },
        **common,
    )


def position_limit(scheme: str, config) -> int | None:
    """The longest sequence the scheme can represent, or None when it has no limit."""
    if scheme == "learned":
        return int(config.n_positions)
    return None
