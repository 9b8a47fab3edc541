"""`hapo-sweep SPEC.yaml`: many training runs from one spec, on Ray (one machine or a cluster).

A spec is YAML::

    dir: results/paper_mamujoco          # the sweep folder (relative to the current directory)
    base: tuned                          # 'tuned' (each trial's built-in config for its task and
                                         # algorithm, as hapo-train --scenario picks), a built-in
                                         # config name, or a YAML file (relative to the spec)
    fallback: paper_mamujoco             # optional, with base tuned: the config of trials whose
                                         # task and algorithm have no tuned one (default: the
                                         # schema defaults)
    set:                                 # optional: overrides of every trial
      run.num_env_steps: 1000000
    grid:                                # one mapping, or a list of them (their union)
      run.seed: [1, 2, 3]
      env: [{scenario: HalfCheetah, agent_conf: 2x3}, {scenario: Ant, agent_conf: 4x2}]
      algo.name: [happo, hatrpo]

A grid key is `section.key` (a list of values) or a section (a list of mappings of its keys).
Trials are the product of each grid mapping's lists, the first key outermost; each is an
ordinary `hapo-train` run folder under `dir`, named from its grid values
(`run.seed=1_env=HalfCheetah-2x3_algo.name=happo`).

Trials are Ray tasks (Ray Core, not Tune: a trial's state is its run folder, which already
resumes exactly, so Tune's own experiment state and trial folders would be a second copy).
Rerunning a sweep is safe: finished trials are skipped, interrupted ones resume from their
checkpoint, and a failed trial is reported at the end while the others go on.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import pathlib
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from hapo import config as config_lib
from hapo.config import SECTIONS, Config, ConfigError
from hapo.logger import read_csv

log = logging.getLogger(__name__)

SPEC_KEYS = ("dir", "base", "fallback", "set", "grid")
@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of a sweep: its folder name, its grid values and its resolved config."""

    name: str
    values: tuple[tuple[str, Any], ...]
    config: Config

    @property
    def run_dir(self) -> pathlib.Path:
        return pathlib.Path(self.config.run.log_dir) / self.config.run.run_name

    @property
    def cpus(self) -> int:
        """CPUs the run keeps busy: the env threads while stepping, the torch threads otherwise."""
        cfg = self.config
        return max(cfg.env.num_threads, cfg.run.torch_threads, cfg.run.update_torch_threads)

    @property
    def total_iterations(self) -> int:
        from hapo.train import iteration_env_steps

        return self.config.run.num_env_steps // iteration_env_steps(self.config)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed, checked sweep spec (see the module docstring)."""

    dir: pathlib.Path
    base: str
    fallback: str | None
    overrides: dict[str, Any]
    grid: tuple[dict[str, list[Any]], ...]
    source: pathlib.Path | None = None


def load_spec(path: str | pathlib.Path) -> Spec:
    """Read and check a spec file; errors name the file and the bad key."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"sweep spec {path} is not UTF-8 text") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep spec {path} is not valid YAML: {err}") from None
    return parse_spec(data, source=path)


def parse_spec(data: Any, source: pathlib.Path | None = None) -> Spec:
    where = f"sweep spec {source}" if source else "sweep spec"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(SPEC_KEYS)}, got {data!r}")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(SPEC_KEYS)}")
    if not isinstance(data.get("dir"), str) or not data["dir"]:
        raise ConfigError(f"{where} needs dir: the sweep folder, e.g. dir: results/my_sweep")
    base = data.get("base", "tuned")
    if not isinstance(base, str):
        raise ConfigError(f"base in {where} must be 'tuned', a built-in config name or a YAML file, got {base!r}")
    fallback = data.get("fallback")
    if fallback is not None and (base != "tuned" or not isinstance(fallback, str)):
        raise ConfigError(f"fallback in {where} is the config of trials without a tuned one: a config name or file, with base: tuned; got {fallback!r}")
    overrides = data.get("set") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"set in {where} must map section.key to a value, got {overrides!r}")
    grids = data.get("grid")
    if isinstance(grids, Mapping):
        grids = [grids]
    if not isinstance(grids, list) or not grids:
        raise ConfigError(f"{where} needs grid: a mapping of section.key to a list of values (or a list of such mappings)")
    for grid in grids:
        if not isinstance(grid, Mapping) or not grid:
            raise ConfigError(f"every grid in {where} must be a non-empty mapping of section.key to a list, got {grid!r}")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid key {key!r} in {where} must have a non-empty list of values, got {values!r}")
    return Spec(pathlib.Path(data["dir"]), base, fallback, dict(overrides), tuple(dict(g) for g in grids), source)


def _assignments(key: str, value: Any) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} of one grid or set entry: `section.key: value` or `section: {key: value}`."""
    section, dot, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"unknown section {section!r} in sweep key {key!r}; valid sections: {', '.join(SECTIONS)}")
    if dot:
        return {section: {name: value}}
    if not isinstance(value, Mapping):
        raise ConfigError(f"sweep key {key!r} is a section: its values must be mappings of its keys, got {value!r}")
    return {section: dict(value)}


def _merge_into(target: dict[str, dict[str, Any]], data: dict[str, dict[str, Any]]) -> None:
    for section, values in data.items():
        target.setdefault(section, {}).update(values)


def _label(key: str, value: Any) -> str:
    """A grid value in a folder name; a section's mapping gives its values in the schema's key order."""
    if isinstance(value, Mapping):
        order = [f.name for f in dataclasses.fields(SECTIONS[key])]
        return "-".join(_label(key, value[k]) for k in sorted(value, key=lambda k: order.index(k) if k in order else len(order)))
    return str(value).replace("/", "-").replace(" ", "")


def _load(spec: Spec, name: str) -> Config:
    """A built-in config, or a YAML file relative to the spec (or to the current directory)."""
    relative = None if spec.source is None else spec.source.parent / name
    if relative is not None and relative.suffix in (".yaml", ".yml") and relative.is_file():
        return config_lib.load(str(relative))
    return config_lib.load(name)


def _base_config(spec: Spec, data: dict[str, dict[str, Any]]) -> Config:
    if spec.base != "tuned":
        return _load(spec, spec.base)
    # The task and algorithm decide which tuned config applies: read them off the values.
    probe = config_lib.merge(Config(), data, source="sweep trial")
    tuned = config_lib.tuned_name(probe.env.scenario, probe.env.agent_conf, probe.algo.name)
    if tuned is not None:
        return config_lib.load(tuned)
    return Config() if spec.fallback is None else _load(spec, spec.fallback)


def expand(spec: Spec) -> list[Trial]:
    """The spec's trials, each config resolved and checked (before anything runs)."""
    fixed: dict[str, dict[str, Any]] = {}
    for key, value in spec.overrides.items():
        _merge_into(fixed, _assignments(key, value))
    trials: list[Trial] = []
    names: dict[str, Trial] = {}
    for grid in spec.grid:
        keys = list(grid)
        for combination in itertools.product(*(grid[k] for k in keys)):
            values = tuple(zip(keys, combination))
            data: dict[str, dict[str, Any]] = {}
            _merge_into(data, fixed)
            for key, value in values:
                _merge_into(data, _assignments(key, value))
            name = "_".join(f"{key}={_label(key, value)}" for key, value in values)
            data.setdefault("run", {}).update(log_dir=str(spec.dir), run_name=name, progress=False)
            try:
                config = config_lib.merge(_base_config(spec, data), data, source=f"sweep trial {name}")
            except ConfigError as err:
                raise ConfigError(f"trial {name}: {err}") from None
            trial = Trial(name, values, config)
            if name in names:
                if names[name].config != config:
                    raise ConfigError(f"two trials are named {name!r} but differ: make their grid values distinct")
                continue
            names[name] = trial
            trials.append(trial)
    return trials


# -- trial state -------------------------------------------------------------------------
def _last_iteration(metrics: pathlib.Path) -> int:
    if not metrics.is_file():
        return 0
    rows = read_csv(metrics)
    return int(rows[-1]["iteration"]) if rows else 0


def trial_state(trial: Trial) -> str:
    """'done', 'resume' (a checkpoint to continue), 'restart' (outputs without a checkpoint:
    cleared first) or 'new'. Raises ConfigError if the folder holds a run of another config."""
    from hapo.train import CHECKPOINT_FILE, CONFIG_FILE

    run_dir = trial.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"trial {trial.name}: {run_dir} exists and is not a folder")
    if not (run_dir / CONFIG_FILE).is_file():
        return "restart" if run_dir.is_dir() and any(run_dir.iterdir()) else "new"
    differences = config_lib.run_defining_differences(config_lib.load(str(run_dir / CONFIG_FILE)).to_dict(), trial.config.to_dict())
    if differences:
        raise ConfigError(
            f"trial {trial.name}: {run_dir} holds a run of another config ({', '.join(differences)} differ); "
            "move it away or change the spec"
        )
    if _last_iteration(run_dir / "metrics.csv") >= trial.total_iterations:
        return "done"
    return "resume" if (run_dir / CHECKPOINT_FILE).is_file() else "restart"


def run_trial(config_dict: dict, state: str) -> dict:
    """Run (or continue) one trial in this process; returns its last metrics row."""
    from hapo.train import Trainer, remove_outputs

    config = Config.from_dict(config_dict)
    run_dir = pathlib.Path(config.run.log_dir) / config.run.run_name
    if state == "resume":
        trainer = Trainer.resume(run_dir, num_env_steps=config.run.num_env_steps, progress=False)
    else:
        if state == "restart":  # outputs without a checkpoint to resume from
            remove_outputs(run_dir)
        trainer = Trainer(config, run_dir)
    trainer.train()
    return dict(trainer.history[-1]) if trainer.history else {}


# -- running on Ray ----------------------------------------------------------------------
@dataclasses.dataclass
class SweepResult:
    skipped: list[str]
    finished: dict[str, dict]
    failed: dict[str, str]


def run_sweep(
    trials: Sequence[Trial],
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run the trials that are not done as Ray tasks; return what was skipped, finished, failed.

    address: an existing Ray cluster ('auto' or host:port); None starts a local Ray.
    max_concurrent: most trials running at once (None: as many as the CPUs allow).
    num_cpus: CPUs of the local Ray (None: all of this machine's); ignored with address.
    """
    import ray

    states = {trial.name: trial_state(trial) for trial in trials}
    skipped = [name for name, state in states.items() if state == "done"]
    pending = [trial for trial in trials if states[trial.name] != "done"]
    result = SweepResult(skipped, {}, {})
    for name in skipped:
        log.info("trial %s: done already, skipped", name)
    if not pending:
        return result
    for trial in pending:
        trial.run_dir.parent.mkdir(parents=True, exist_ok=True)

    started_ray = not ray.is_initialized()
    if started_ray:
        # Ray puts the driver's current directory on its workers' sys.path, where a source
        # checkout of hapo (as in the repository's root) would shadow the installed package:
        # start it from the sweep folder instead (trials get absolute run folders).
        here = os.getcwd()
        os.chdir(pending[0].run_dir.parent)
        try:
            ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
        finally:
            os.chdir(here)
    try:
        capacity = int(ray.cluster_resources().get("CPU", 0))
        too_big = [t for t in pending if t.cpus > capacity]
        if too_big:
            raise ConfigError(
                f"trial {too_big[0].name} needs {too_big[0].cpus} CPUs (its thread settings) but the Ray cluster "
                f"has {capacity}: lower env.num_threads / run.update_torch_threads or add machines"
            )
        remote = ray.remote(max_retries=0)(_run_trial_remote)
        limit = max_concurrent or len(pending)
        queue = list(pending)
        running: dict[Any, Trial] = {}
        with _Display(len(trials), len(skipped), progress) as display:
            while queue or running:
                while queue and len(running) < limit:
                    trial = queue.pop(0)
                    ref = remote.options(num_cpus=trial.cpus, name=trial.name).remote(_absolute(trial.config).to_dict(), states[trial.name])
                    running[ref] = trial
                    log.info("trial %s: %s", trial.name, {"resume": "resuming", "restart": "restarting"}.get(states[trial.name], "starting"))
                display.update(len(result.finished), len(running), len(result.failed))
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    trial = running.pop(ref)
                    try:
                        result.finished[trial.name] = ray.get(ref)
                        log.info("trial %s: finished", trial.name)
                    except Exception as err:  # noqa: BLE001 - a trial's failure is reported, the others go on
                        result.failed[trial.name] = _error_text(err)
                        log.error("trial %s: failed: %s", trial.name, result.failed[trial.name].splitlines()[-1])
                display.update(len(result.finished), len(running), len(result.failed))
    finally:
        if started_ray:
            ray.shutdown()
    return result


def _absolute(config: Config) -> Config:
    """The config with an absolute run.log_dir: a Ray worker's current directory is not the driver's."""
    return dataclasses.replace(config, run=dataclasses.replace(config.run, log_dir=str(pathlib.Path(config.run.log_dir).resolve())))


def _run_trial_remote(config_dict: dict, state: str) -> dict:
    logging.basicConfig(level=logging.WARNING)
    return run_trial(config_dict, state)


def _error_text(err: BaseException) -> str:
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        return "".join(traceback.format_exception_only(type(cause), cause)).strip()
    return str(err).strip()


class _Display:
    """A rich progress bar of trials: done (finished or skipped), running, failed."""

    def __init__(self, total: int, skipped: int, enabled: bool):
        self.total, self.skipped, self.enabled = total, skipped, enabled
        self._progress = None

    def __enter__(self) -> _Display:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                TimeElapsedColumn(),
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total, completed=self.skipped)
        return self

    def update(self, finished: int, running: int, failed: int) -> None:
        if self._progress is not None:
            description = f"done {self.skipped + finished} (skipped {self.skipped}) · running {running} · failed {failed}"
            self._progress.update(self._task, completed=self.skipped + finished + failed, description=description)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


# -- command line ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hapo-sweep",
        description="Run every trial of a sweep spec (a grid of configs) as hapo-train run folders, on a local "
        "Ray or a Ray cluster. Rerunning skips finished trials and resumes interrupted ones.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", help="the sweep spec (YAML)")
    parser.add_argument("--address", help="join this Ray cluster ('auto' or HOST:PORT) instead of starting a local Ray; "
                        "the sweep folder must be on storage every node sees")
    parser.add_argument("--max-concurrent", type=int, help="most trials running at once (default: as the CPUs allow)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all of this machine's)")
    parser.add_argument("--dir", help="the sweep folder, instead of the spec's dir")
    parser.add_argument("--list", action="store_true", help="print the trials and their state, then exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in ("max_concurrent", "num_cpus"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    _setup_logging()
    try:
        spec = load_spec(args.spec)
        if args.dir is not None:
            spec = dataclasses.replace(spec, dir=pathlib.Path(args.dir))
        trials = expand(spec)
        if args.list:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=f"{len(trials)} trials in {spec.dir}")
            for column in ("trial", "state", "CPUs"):
                table.add_column(column)
            for trial in trials:
                table.add_row(trial.name, trial_state(trial), str(trial.cpus))
            Console().print(table)
            return 0
        start = time.perf_counter()
        result = run_sweep(
            trials, address=args.address, max_concurrent=args.max_concurrent, num_cpus=args.num_cpus,
            progress=not args.no_progress,
        )
    except ConfigError as err:
        parser.error(str(err))
    log.info(
        "sweep %s: %d finished, %d skipped (done before), %d failed in %.0f s",
        spec.dir, len(result.finished), len(result.skipped), len(result.failed), time.perf_counter() - start,
    )
    for name, error in result.failed.items():
        log.error("failed: %s: %s", name, error)
    return 1 if result.failed else 0


def _setup_logging() -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler], force=True)


if __name__ == "__main__":
    sys.exit(main())
