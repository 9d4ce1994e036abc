"""``python -m benchbench``: run a sweep and print the task x length table.

Hydra composes the config from ``conf/``; every error a user can cause ends as
one ``benchbench: error: ...`` line naming the key to change, and a non-zero
exit code (2 for bad input, 130 for Ctrl-C, 1 when a job of a multirun failed).
"""

import logging
import os
import re
import shlex
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchbench import runner
from benchbench.config import Settings, register_schemas, to_settings
from benchbench.errors import BenchError, ConfigError, RunInterrupted, failure_reason
from benchbench.records import MANIFEST, read_manifest
from benchbench.summary import summarize

CONFIG_DIR = str(runner.PROJECT_ROOT / "conf")
EXIT_JOBS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

register_schemas()
log = logging.getLogger(__name__)


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
    """Compose and check the config before Hydra starts, so that bad input fails with one line.

    Returns the command line to hand to Hydra (a resume adds its run folder).
    For a multirun (``-m``), every job's config is composed and checked, so
    that one bad combination stops the sweep before any job starts.
    """
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return argv
    # a preset may make the run a multirun itself (hydra.mode: MULTIRUN)
    if not args.multirun and not _preset_multirun(list(args.overrides)):
        cfg, settings = _checked(list(args.overrides))
        if not wants_resume(settings):
            return argv
        try:
            target = resume_target(settings, OmegaConf.to_container(cfg, resolve=True))
        except BenchError as err:
            fail(str(err))
        # Hydra then logs and writes its own files into the resumed run
        return [*argv, f"hydra.run.dir={target}"]

    jobs, swept = sweep_jobs(list(args.overrides))
    for number, job in enumerate(jobs):
        # a job is named by its values of the swept keys, as Hydra lists them
        values = [o for o in job if o.split("=", 1)[0] in swept]
        _, settings = _checked(job, f"job {number} ({' '.join(values)}): ")
        if wants_resume(settings):
            fail(
                "resume: cannot be combined with -m; resume each job's folder on its own"
            )
    return argv


def _with_hydra_config(overrides: list[str]) -> DictConfig:
    """The config of a multirun's first job, with Hydra's own settings (``cfg.hydra``)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="config",
            overrides=_first_of_each_sweep(overrides),
            return_hydra_config=True,
        )


def _preset_multirun(overrides: list[str]) -> bool:
    """Whether the composed config asks for a multirun without ``-m`` (``hydra.mode``)."""
    try:
        cfg = _with_hydra_config(overrides)
    except (HydraException, OmegaConfBaseException, AssertionError):
        # the checks that follow report the error
        return False
    return cfg.hydra.get("mode") == RunMode.MULTIRUN


def _checked(overrides: list[str], where: str = "") -> tuple[DictConfig, Settings]:
    """The composed config and validated settings of one job; a failure ends the command."""
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        fail(where + one_line(err))
    except AssertionError:
        # OmegaConf's reaction to setting a key below an unselected option
        fail(
            f"{where}an override sets a key of a config option that is not selected (e.g. task.needle.* "
            "without needle in task=[...])"
        )
    try:
        settings = to_settings(cfg)
        check_writable(Path(settings.results_dir))
    except BenchError as err:
        fail(where + str(err))
    return cfg, settings


def sweep_jobs(overrides: list[str]) -> tuple[list[list[str]], set[str]]:
    """The overrides of every job of a multirun, in the order Hydra's basic sweeper runs them.

    Also returns the swept keys (as written, e.g. ``scaling`` or
    ``scaling.factor``). Sweeps set in the config itself
    (``hydra.sweeper.params``, as an experiment preset may) come first, as in
    the sweeper.
    """
    try:
        cfg = _with_hydra_config(overrides)
        params = cfg.hydra.sweeper.get("params") or {}
        preset = [f"{key}={value}" for key, value in params.items()]
        parsed = OverridesParser.create().parse_overrides(preset + overrides)
    except (HydraException, OmegaConfBaseException) as err:
        fail(one_line(err))
    except AssertionError:
        fail("an override sets a key of a config option that is not selected")
    swept = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch], swept


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
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        settings = to_settings(cfg)
        records = runner.run(
            settings,
            run_dir,
            resolved_config=OmegaConf.to_container(cfg, resolve=True),
            choices=dict(hydra_cfg.runtime.choices),
            resume=wants_resume(settings),
            # a sweep's job runs with its own overrides, maybe in another process
            overrides=list(hydra_cfg.overrides.task) if in_sweep else None,
        )
    except RunInterrupted as err:
        fail(f"{err}; resume with: {resume_hint(run_dir)}", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        fail(
            f"stopped by Ctrl-C; resume with: {resume_hint(run_dir)}", EXIT_INTERRUPTED
        )
    except Exception as err:
        if not in_sweep and isinstance(err, BenchError):
            fail(str(err))
        if not in_sweep:
            raise
        # the other jobs go on; this one's manifest already says why it failed
        if not isinstance(err, BenchError):
            log.exception("job %s failed", hydra_cfg.job.num)
        job = f"job {hydra_cfg.job.num} ({hydra_cfg.job.override_dirname})"
        print(f"benchbench: error: {job}: {failure_reason(err)}", file=sys.stderr)
        return

    table = summarize(records)
    scaling = f"scaling={settings.scaling.method} x{settings.scaling.factor:g}"
    print(
        f"\n{settings.model.name} | {settings.backend.name} | encoding={settings.model.encoding} "
        f"| {scaling} | records in {run_dir}\n"
    )
    print(
        table.to_string() if not table.empty else "(no records: nothing was measured)"
    )


class SweepSummary(Callback):
    """Once every job of a multirun has ended, say which failed and exit non-zero if any did.

    Reads the jobs' manifests, so it works the same whichever launcher ran
    them (in this process, as submitit or Slurm jobs, or on Ray), as long as
    the sweep folder is on a file system this process sees.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        # job folders are numbered; 10 comes after 9
        jobs = sorted(
            sweep_dir.glob(f"*/{MANIFEST}"),
            key=lambda p: (len(p.parent.name), p.parent.name),
        )
        unfinished = []
        for path in jobs:
            try:
                manifest = read_manifest(path.parent)
            except BenchError as err:
                unfinished.append(f"{path.parent.name}: {err}")
                continue
            if manifest.get("status") != "complete":
                reason = manifest.get("error") or "ended without finishing (killed?)"
                unfinished.append(
                    f"{path.parent.name}: {manifest.get('status')}: {reason}"
                )
        print(
            f"\nmultirun: {len(jobs) - len(unfinished)} of {len(jobs)} jobs complete, "
            f"records in {sweep_dir}"
        )
        for line in unfinished:
            print(f"  job {line}")
        if unfinished:
            sys.exit(EXIT_JOBS_FAILED)


def main() -> None:
    # a sweep on Ray would otherwise send usage statistics to Ray's makers
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        # Hydra reads the command line itself; a resume adds its run directory
        sys.argv[1:] = preflight(sys.argv[1:])
        _job()
    except KeyboardInterrupt:
        fail("stopped by Ctrl-C before any cell was measured", EXIT_INTERRUPTED)
