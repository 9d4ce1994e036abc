"""``python -m benchbench.lmeval run ...``: lm-eval's own command line, with ``--model benchbench``.

    python -m benchbench.lmeval run --model benchbench \
        --model_args model=smollm2,scaling=yarn,scaling.factor=2,backend.n_ctx=4096 \
        --include_path tasks --tasks benchbench_passkey \
        --metadata '{"context_lengths": [1024, 2048, 4096]}'

Every argument is lm-eval's; the only difference from ``lm_eval`` is that
benchbench's model is registered first.
"""

from lm_eval.__main__ import cli_evaluate

import benchbench.lmeval  # noqa: F401  (registers the model as "benchbench")

cli_evaluate()
