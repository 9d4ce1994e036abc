"""``python -m benchbench``: run a sweep and print the task x length table.

Hydra composes the config from ``conf/``; every error a user can cause ends as
one ``benchbench: error: ...`` line naming the key to change, and a non-zero
exit code (2 for bad input, 130 for Ctrl-C).
"""

import logging
import re
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchbench import runner
from benchbench.config import register_schemas, to_settings
from benchbench.errors import BenchError
from benchbench.summary import summarize

log = logging.getLogger("benchbench")

CONFIG_DIR = str(runner.PROJECT_ROOT / "conf")
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

register_schemas()


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    print(f"benchbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def one_line(err: Exception) -> str:
    """Hydra and OmegaConf errors as one line, without their debugging detail."""
    missing = re.search(r"Could not (?:find|load) '([\w/]+)/([^'/]+)'", str(err))
    if isinstance(err, MissingConfigException) and missing:
        group, option = missing.groups()
        choices = sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))
        return f"{group}={option}: no such option; choose one of {', '.join(choices)}"
    lines = []
    for e in (err, err.__cause__):
        for line in str(e or "").splitlines():
            skip = line.startswith(
                (
                    " ",
                    "\t",
                    "full_key",
                    "object_type",
                    "To append",
                    "Config search path",
                )
            )
            if line.strip() and not skip and line not in lines:
                lines.append(line.strip())
    return "; ".join(lines) or type(err).__name__


def preflight(overrides: list[str]) -> None:
    """Compose the config once so that bad overrides fail with one line.

    Multirun sweeps (``-m``) and Hydra's own flags are left to Hydra.
    """
    if any(arg.startswith("-") for arg in overrides):
        return
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        fail(one_line(err))
    try:
        to_settings(cfg)
    except BenchError as err:
        fail(str(err))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _job(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        settings = to_settings(cfg)
        records = runner.run(
            settings,
            run_dir,
            resolved_config=OmegaConf.to_container(cfg, resolve=True),
            choices=dict(hydra_cfg.runtime.choices),
        )
    except BenchError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail(
            f"interrupted; partial records are in {run_dir} (manifest status: interrupted)",
            EXIT_INTERRUPTED,
        )

    table = summarize(records)
    print(
        f"\n{settings.model.name} | {settings.backend.name} | scaling={settings.scaling.method}",
        end="",
    )
    print(f" x{settings.scaling.factor:g} | records in {run_dir}\n")
    print(table.to_string())


def main() -> None:
    preflight(sys.argv[1:])
    _job()
