"""benchbench: long-context evaluation of language models and RoPE scaling methods."""
