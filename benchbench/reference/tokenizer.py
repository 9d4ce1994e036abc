"""The reference models' tokenizer: a small byte-level BPE learnt from the training text.

Byte-level, so that any text has ids and decodes back unchanged; digits are
split one by one before the merges, so that a passkey is a run of single-digit
tokens and copying it is the same skill at every length. One special token,
``<|endoftext|>``, starts every sequence (BOS) and ends documents (EOS).
"""

from pathlib import Path

SPECIAL = "<|endoftext|>"


def train_tokenizer(text: str, vocab_size: int):
    """A ``PreTrainedTokenizerFast`` with ``vocab_size`` ids learnt from ``text``.

    Training is deterministic for the same text and size. The tokenizer adds
    the BOS itself (``add_special_tokens=True``), as Llama's does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        # every byte has an id, so no text is ever out of vocabulary
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_paragraphs(text), trainer=trainer)
    bos = tokenizer.token_to_id(SPECIAL)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL} $A", special_tokens=[(SPECIAL, bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=SPECIAL,
        eos_token=SPECIAL,
        model_max_length=1 << 30,
    )


def _paragraphs(text: str):
    # the trainer counts pairs within each item; paragraphs keep items small
    for paragraph in text.split("\n\n"):
        if paragraph.strip():
            yield paragraph


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
