"""``python -m benchbench``: run a sweep and print the task x length table.

Hydra composes the config from ``conf/``; every error a user can cause ends as
one ``benchbench: error: ...`` line naming the key to change, and a non-zero
exit code (2 for bad input, 130 for Ctrl-C).
"""

import os
import re
import shlex
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchbench import runner
from benchbench.config import Settings, register_schemas, to_settings
from benchbench.errors import BenchError, ConfigError, RunInterrupted
from benchbench.records import MANIFEST, read_manifest
from benchbench.summary import summarize

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


def preflight(argv: list[str]) -> list[str]:
    """Compose and check the config once, so that bad input fails with one line.

    Returns the command line to hand to Hydra (a resume adds its run folder).
    For a multirun (``-m``), the first value of every swept key is checked.
    """
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return argv
    try:
        overrides = (
            _first_of_each_sweep(args.overrides)
            if args.multirun
            else list(args.overrides)
        )
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        fail(one_line(err))
    except AssertionError:
        # OmegaConf's reaction to setting a key below an unselected option
        fail(
            "an override sets a key of a config option that is not selected (e.g. task.needle.* without needle "
            "in task=[...])"
        )
    try:
        settings = to_settings(cfg)
        check_writable(Path(settings.results_dir))
        if wants_resume(settings):
            if args.multirun:
                raise ConfigError(
                    "resume",
                    "cannot be combined with -m; resume each job's folder on its own",
                )
            target = resume_target(settings, OmegaConf.to_container(cfg, resolve=True))
            # Hydra then logs and writes its own files into the resumed run
            return [*argv, f"hydra.run.dir={target}"]
    except BenchError as err:
        fail(str(err))
    return argv


def compose_or_fail(config_name: str, schema: type, argv: list[str], usage: str = ""):
    """Compose ``conf/<config_name>.yaml`` with the overrides in ``argv`` into a validated ``schema``.

    For the helper commands (``benchbench.rope``, ``benchbench.parity``), which
    need config groups but no run folder of Hydra's. ``--help`` prints
    ``usage``; ``--cfg job`` prints the composed config; both then exit.
    """
    if {"-h", "--help"} & set(argv):
        print(usage.strip())
        sys.exit(0)
    show_config = "--cfg" in argv
    overrides = [a for a in argv if a not in ("--cfg", "job")]
    flags = [a for a in overrides if a.startswith("-")]
    if flags:
        fail(
            f"{flags[0]}: unknown flag; this command takes --help, --cfg job and key=value overrides"
        )
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        fail(one_line(err))
    except AssertionError:
        fail("an override sets a key of a config option that is not selected")
    if show_config:
        print(OmegaConf.to_yaml(cfg))
        sys.exit(0)
    try:
        return to_settings(cfg, schema)
    except BenchError as err:
        fail(str(err))


def _first_of_each_sweep(overrides: list[str]) -> list[str]:
    """The overrides of a multirun's first job (``a=1,2`` becomes ``a=1``)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    first = []
    for override, text in zip(parsed, overrides, strict=True):
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            prefix = override.get_key_element()
            first.append(f"{prefix}={value}")
        else:
            first.append(text)
    return first


def check_writable(results_dir: Path) -> None:
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            "results_dir", f"cannot create '{results_dir}': {err.strerror}"
        ) from None
    if not results_dir.is_dir() or not os.access(results_dir, os.W_OK | os.X_OK):
        raise ConfigError("results_dir", f"'{results_dir}' is not a writable folder")


def wants_resume(settings: Settings) -> bool:
    return settings.resume is not None and settings.resume.lower() not in (
        "false",
        "no",
        "",
    )


def resume_target(settings: Settings, resolved: dict) -> Path:
    """The run directory that ``resume=...`` points at."""
    if settings.resume.lower() not in ("true", "yes"):
        target = Path(settings.resume)
        if not (target / MANIFEST).is_file():
            raise ConfigError(
                "resume",
                f"'{target}' is not a benchbench run directory (no {MANIFEST})",
            )
        return target

    # the newest unfinished run made with this same config
    candidates = []
    for path in Path(settings.results_dir).glob(f"*/{MANIFEST}"):
        try:
            manifest = read_manifest(path.parent)
        except BenchError:
            continue
        if manifest.get("status") != "complete" and not runner.config_difference(
            manifest.get("config", {}), resolved
        ):
            candidates.append((manifest.get("started_at", ""), path.parent))
    if not candidates:
        raise ConfigError(
            "resume",
            f"no unfinished run with this config under '{settings.results_dir}'; give its folder: resume=PATH",
        )
    return max(candidates)[1]


def resume_hint(run_dir: Path) -> str:
    """The command that continues ``run_dir``, quoted for a POSIX shell."""
    python = os.path.relpath(sys.executable)
    if python.startswith(".."):
        python = sys.executable
    args = [a for a in sys.argv[1:] if not a.startswith(("resume=", "hydra.run.dir="))]
    return shlex.join([python, "-m", "benchbench", *args, f"resume={run_dir}"])


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
            resume=wants_resume(settings),
        )
    except RunInterrupted as err:
        fail(f"{err}; resume with: {resume_hint(run_dir)}", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        fail(
            f"stopped by Ctrl-C; resume with: {resume_hint(run_dir)}", EXIT_INTERRUPTED
        )
    except BenchError as err:
        fail(str(err))

    table = summarize(records)
    scaling = f"scaling={settings.scaling.method} x{settings.scaling.factor:g}"
    print(
        f"\n{settings.model.name} | {settings.backend.name} | {scaling} | records in {run_dir}\n"
    )
    print(
        table.to_string() if not table.empty else "(no records: nothing was measured)"
    )


def main() -> None:
    try:
        # Hydra reads the command line itself; a resume adds its run directory
        sys.argv[1:] = preflight(sys.argv[1:])
        _job()
    except KeyboardInterrupt:
        fail("stopped by Ctrl-C before any cell was measured", EXIT_INTERRUPTED)
