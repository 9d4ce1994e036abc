"""The functions benchbench_passkey.yaml names; lm-eval loads this file by its path."""

from benchbench.lmeval.passkey import passkey_dataset, process_results

__all__ = ["passkey_dataset", "process_results"]
