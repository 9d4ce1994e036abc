"""benchbench inside lm-evaluation-harness, both ways round.

- ``tasks/passkey/benchbench_passkey.yaml`` is an lm-eval task: its samples
  are benchbench's passkey prompts, built for the evaluated model's tokenizer
  (``benchbench.lmeval.passkey``), so any lm-eval model can be measured on them.
- ``BenchbenchLM`` (``benchbench.lmeval.model``) is an lm-eval model, registered
  as ``benchbench``: one of benchbench's backends with its RoPE scaling applied,
  so lm-eval's own tasks can run under a scaling method.

Importing this package registers the model with lm-eval.
"""

from benchbench.lmeval.model import BenchbenchLM

__all__ = ["BenchbenchLM"]
