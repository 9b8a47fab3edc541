"""The `hapo-train` command."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import pathlib
import sys

import hapo
from hapo import config as config_lib
from hapo.algos import ALGORITHMS
from hapo.config import Config, ConfigError

log = logging.getLogger("hapo")

# The built-in config that `hapo-train` runs with no flags. Once hapo.envs.make exists,
# set it to "quickstart_halfcheetah_6x1".
DEFAULT_CONFIG = "quickstart_halfcheetah_6x1"

# Flags that are shorthands for config keys.
FLAG_KEYS = {
    "algo": "algo.name",
    "scenario": "env.scenario",
    "agent_conf": "env.agent_conf",
    "seed": "run.seed",
    "num_env_steps": "run.num_env_steps",
    "log_dir": "run.log_dir",
    "run_name": "run.run_name",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hapo-train",
        description=(
            "Train cooperative heterogeneous agents with HAPPO or HATRPO (one actor per agent, "
            "sequential updates weighted by the compound factor), or a baseline (--algo). With no flags, runs the built-in "
            f"config {DEFAULT_CONFIG!r}. Settings come from the schema defaults, then --config (or "
            "the built-in config tuned for --scenario/--agent-conf and --algo, if there is one), "
            "then the flags below, then --set."
        ),
        epilog="Config keys (for --set section.key=value and YAML files):\n" + config_lib.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hapo {hapo.__version__}")
    parser.add_argument("--config", metavar="NAME_OR_FILE", help=f"a YAML file, or a built-in config: {', '.join(config_lib.builtin_names())}")
    parser.add_argument("--algo", help="algo.name: " + "; ".join(f"{name} ({a.summary})" for name, a in ALGORITHMS.items()))
    parser.add_argument("--scenario", help="task (env.scenario), e.g. HalfCheetah or ToyReach")
    parser.add_argument("--agent-conf", dest="agent_conf", help="agent partition (env.agent_conf), e.g. 6x1")
    parser.add_argument("--seed", help="run.seed")
    parser.add_argument("--num-env-steps", dest="num_env_steps", help="run.num_env_steps, e.g. 1e6")
    parser.add_argument("--log-dir", dest="log_dir", help="run.log_dir: parent of the run folder")
    parser.add_argument("--run-name", dest="run_name", help="run.run_name: the run folder's name")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. --set algo.clip=0.1 (repeatable)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint (only --num-env-steps may change)")
    parser.add_argument("--overwrite", action="store_true", help="start over in a run folder that already holds a run: its outputs are removed once the new run is set up")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (run.progress=false)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.add_argument("--list-envs", action="store_true", help="print every environment and partition, then exit")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error instead of a one-line message")
    return parser


def resolve_config(args: argparse.Namespace) -> Config:
    """The config of a new run: schema defaults, config file, flags, --set, in that order."""
    if args.config is not None:
        base = config_lib.load(args.config)
        log.info("config: %s", config_lib.resolve_path(args.config))
    elif args.scenario is not None:
        tuned = config_lib.tuned_name(args.scenario, args.agent_conf, args.algo)
        base = Config() if tuned is None else config_lib.load(tuned)
        log.info("config: %s", tuned or "schema defaults")
    else:
        base = config_lib.load(DEFAULT_CONFIG)
        log.info("config: built-in %s (the default job)", DEFAULT_CONFIG)
    flags = [f"{key}={getattr(args, flag)}" for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None]
    if args.no_progress:
        flags.append("run.progress=false")
    return base.with_overrides(flags + args.overrides)


def new_run_dir(config: Config, overwrite: bool = False) -> pathlib.Path:
    """The folder of a new run, checked (not yet made): no existing run in it unless `overwrite`, and makeable."""
    from hapo.train import run_name

    name = config.run.run_name or f"{run_name(config)}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = pathlib.Path(config.run.log_dir) / name
    if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"run folder {run_dir} already holds a run: continue it with --resume {run_dir}, start it over with --overwrite, "
            "or choose another run.run_name"
        )
    # The nearest folder that exists must be a writable folder, or the first iteration's outputs fail.
    existing = next((folder for folder in (run_dir, *run_dir.parents) if folder.exists()), pathlib.Path.cwd())
    if not existing.is_dir():
        raise ConfigError(f"run folder {run_dir} cannot be made: {existing} is a file (run.log_dir must be a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"run folder {run_dir} cannot be made: {existing} is not writable")
    return run_dir


def check_resumable(run_dir: pathlib.Path) -> None:
    """A folder that --resume can continue: a writable folder with a checkpoint (checked when read)."""
    from hapo.train import CHECKPOINT_FILE, CONFIG_FILE

    if not run_dir.is_dir():
        raise ConfigError(f"cannot resume {run_dir}: {'it is not a folder' if run_dir.exists() else 'no such folder'}")
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot resume {run_dir}: the folder is not writable (its metrics and checkpoint are updated)")
    if (run_dir / CONFIG_FILE).is_file() and not (run_dir / CHECKPOINT_FILE).is_file():
        start_over = f"hapo-train --config {run_dir / CONFIG_FILE} --log-dir {run_dir.parent} --run-name {run_dir.name} --overwrite"
        raise ConfigError(f"cannot resume {run_dir}: it stopped before its first checkpoint (no {CHECKPOINT_FILE}); start it over with {start_over}")


# Errors of input, files and checkpoints: one line and exit code 2 (a traceback with --debug).
# MemoryError: a batch that cannot fit, such as env.num_envs = 10**9.
USER_ERRORS = (ValueError, OSError, MemoryError)  # ConfigError and CheckpointError are ValueErrors


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_envs:
        from hapo.envs import print_task_table

        print_task_table()
        return 0
    _setup_logging()
    trainer = None
    try:
        trainer = _start(parser, args)
        if trainer is None:
            return 0
        trainer.train()
    except USER_ERRORS as err:
        if args.debug:
            raise
        _exit_with_error(parser, " ".join(str(err).split()) or type(err).__name__)
    except KeyboardInterrupt:
        if args.debug:
            raise
        _exit_with_error(parser, _interrupted(trainer), code=130)
    final = trainer.history[-1] if trainer.history else None
    if final is not None:
        log.info(
            "done: %d env steps, train return %s, eval return %s; outputs in %s",
            trainer.env_steps, _fmt(final["train_return"]), _fmt(final["eval_return"]), trainer.run_dir,
        )
    return 0


def _start(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The trainer of a new or resumed run, everything checked; None after --print-config."""
    from hapo.train import Trainer, remove_outputs

    if args.resume is not None:
        if args.overwrite:
            parser.error("--overwrite starts a run over and --resume continues one: give one of them")
        changed = [f"--{flag.replace('_', '-')}" for flag in (*FLAG_KEYS, "config") if flag != "num_env_steps" and getattr(args, flag) is not None]
        if changed or args.overrides:
            parser.error(f"--resume continues a run with its own config: drop {', '.join(changed + ['--set'] * bool(args.overrides))}")
        steps = None if args.num_env_steps is None else config_lib.Config().with_overrides([f"run.num_env_steps={args.num_env_steps}"]).run.num_env_steps
        run_dir = pathlib.Path(args.resume)
        check_resumable(run_dir)
        trainer = Trainer.resume(run_dir, num_env_steps=steps, progress=not args.no_progress)
        if trainer.iteration == trainer.total_iterations:
            log.info("%s already has its %d env steps: nothing to train (extend it with --num-env-steps)", run_dir, trainer.env_steps)
        else:
            log.info("resuming %s at iteration %d (%d env steps)", run_dir, trainer.iteration, trainer.env_steps)
        return trainer
    config = resolve_config(args)
    if args.print_config:
        sys.stdout.write(config_lib.dump(config))
        return None
    run_dir = new_run_dir(config, overwrite=args.overwrite)
    trainer = Trainer(config, run_dir)
    if args.overwrite:
        remove_outputs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info("run folder: %s", run_dir)
    return trainer


def _interrupted(trainer) -> str:
    from hapo.train import CHECKPOINT_FILE

    if trainer is None:
        return "interrupted"
    message = f"interrupted at iteration {trainer.iteration}"
    if (trainer.run_dir / CHECKPOINT_FILE).is_file():
        message += f"; continue from its last checkpoint with hapo-train --resume {trainer.run_dir}"
    return message


def _exit_with_error(parser: argparse.ArgumentParser, message: str, code: int = 2) -> None:
    sys.stderr.write(f"{parser.prog}: error: {message}\n")
    raise SystemExit(code)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _setup_logging() -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler], force=True)


if __name__ == "__main__":
    sys.exit(main())
