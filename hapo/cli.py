"""The `hapo-train` command."""

from __future__ import annotations

import argparse
import datetime
import logging
import pathlib
import sys

import hapo
from hapo import config as config_lib
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
            "sequential updates weighted by the compound factor). With no flags, runs the built-in "
            f"config {DEFAULT_CONFIG!r}. Settings come from the schema defaults, then --config (or "
            "the built-in config tuned for --scenario/--agent-conf and --algo, if there is one), "
            "then the flags below, then --set."
        ),
        epilog="Config keys (for --set section.key=value and YAML files):\n" + config_lib.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hapo {hapo.__version__}")
    parser.add_argument("--config", metavar="NAME_OR_FILE", help=f"a YAML file, or a built-in config: {', '.join(config_lib.builtin_names())}")
    parser.add_argument("--algo", help="per-agent update (algo.name): happo or hatrpo")
    parser.add_argument("--scenario", help="task (env.scenario), e.g. HalfCheetah or ToyReach")
    parser.add_argument("--agent-conf", dest="agent_conf", help="agent partition (env.agent_conf), e.g. 6x1")
    parser.add_argument("--seed", help="run.seed")
    parser.add_argument("--num-env-steps", dest="num_env_steps", help="run.num_env_steps, e.g. 1e6")
    parser.add_argument("--log-dir", dest="log_dir", help="run.log_dir: parent of the run folder")
    parser.add_argument("--run-name", dest="run_name", help="run.run_name: the run folder's name")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. --set algo.clip=0.1 (repeatable)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint (only --num-env-steps may change)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (run.progress=false)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.add_argument("--list-envs", action="store_true", help="print every environment and partition, then exit")
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


def new_run_dir(config: Config) -> pathlib.Path:
    from hapo.train import run_name

    name = config.run.run_name or f"{run_name(config)}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = pathlib.Path(config.run.log_dir) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"run folder {run_dir} already holds a run: continue it with --resume {run_dir}, or choose another run.run_name")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_envs:
        from hapo.envs import print_task_table

        print_task_table()
        return 0
    _setup_logging()
    from hapo.train import Trainer

    try:
        if args.resume is not None:
            changed = [f"--{flag.replace('_', '-')}" for flag in (*FLAG_KEYS, "config") if flag != "num_env_steps" and getattr(args, flag) is not None]
            if changed or args.overrides:
                parser.error(f"--resume continues a run with its own config: drop {', '.join(changed + ['--set'] * bool(args.overrides))}")
            steps = None if args.num_env_steps is None else config_lib.Config().with_overrides([f"run.num_env_steps={args.num_env_steps}"]).run.num_env_steps
            trainer = Trainer.resume(args.resume, num_env_steps=steps, progress=not args.no_progress)
            log.info("resuming %s at iteration %d (%d env steps)", args.resume, trainer.iteration, trainer.env_steps)
        else:
            config = resolve_config(args)
            if args.print_config:
                sys.stdout.write(config_lib.dump(config))
                return 0
            run_dir = new_run_dir(config)
            trainer = Trainer(config, run_dir)
            log.info("run folder: %s", run_dir)
    except (ConfigError, FileNotFoundError) as err:
        parser.error(str(err))
    trainer.train()
    final = trainer.history[-1] if trainer.history else None
    if final is not None:
        log.info(
            "done: %d env steps, train return %s, eval return %s; outputs in %s",
            trainer.env_steps, _fmt(final["train_return"]), _fmt(final["eval_return"]), trainer.run_dir,
        )
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _setup_logging() -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler], force=True)


if __name__ == "__main__":
    sys.exit(main())
