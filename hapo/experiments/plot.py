"""Statistics and pictures across seeds: `hapo-plot RUN_OR_SWEEP_DIRS... --out DIR`.

A run folder is any folder holding both `config.yaml` and `metrics.csv` (what `hapo-train`
and `hapo-sweep` write); the paths given are searched at any depth. Runs are grouped by
setting: the task (env.scenario, env.agent_conf), algo.name, and every other config key whose
value differs between runs of the same task and algorithm. The run section (seed, length,
evaluation schedule, logging, thread counts) and env.num_threads (results do not depend on
it) never split a group; `ignore` adds keys to that list.

Python API (what the CLI does)::

    from hapo.experiments import plot

    runs = plot.find_runs(["results/sweep"])              # list[Run]
    runs = plot.select_metric(runs, "eval_return")        # drops runs without a value
    groups = plot.group_runs(runs)                        # {label: Group}
    rows = plot.summary_table(groups, "eval_return")      # list[Summary], one per group
    plot.plot_curves(groups, "eval_return", "plots/")     # one PNG per task
    speeds = plot.throughput_table(groups)                # list[Throughput]

Statistics:
  - final score of a run: the mean of its last `window` values of the metric (rows where it
    is empty, e.g. eval_return between evaluations, are skipped);
  - mean and std (ddof=1) over seeds; IQM (25% trimmed mean) with a 95% stratified-bootstrap
    CI from rliable;
  - learning curves: mean over seeds at the env steps that every run of the group logged
    (no interpolation: runs of different length are cut to the shortest), with a 95%
    percentile-bootstrap band over seeds;
  - with published numbers (`load_reference`): the ratio mean / published per group, and an
    aggregate IQM across tasks of scores normalised by the published value of their task and
    algorithm (1 = the paper);
  - wall clock, from the runs' `timing.csv` where they have one (`throughput_table`): a run's
    training time is the sum of its iterations' collection, update and evaluation seconds,
    its speed its env steps over that time.
Every bootstrap is seeded (`seed`), so the outputs are reproducible.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import itertools
import logging
import math
import pathlib
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import yaml

from hapo import config as config_lib
from hapo.config import ConfigError
from hapo.envs import registry

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
TIMING_FILE = "timing.csv"
# The timing.csv columns that add up to an iteration's wall clock.
TIME_COLUMNS = ("collect_seconds", "update_seconds", "eval_seconds")
DEFAULT_METRIC = "eval_return"
DEFAULT_REPS = 10_000
CONFIDENCE = 0.95
# Keys that say how a run was executed or recorded, not which setting it tried.
NON_SETTING_SECTIONS = ("run",)
NON_SETTING_KEYS = ("env.num_threads",)
# Columns that index rows rather than measure anything.
INDEX_COLUMNS = ("iteration", "env_steps")
REFERENCE_COLUMNS = ("scenario", "agent_conf", "algo", "value")

Task = tuple[str, str]  # (scenario, agent_conf)


class PlotError(ValueError):
    """A problem with the user's input: paths without runs, an unknown metric, a bad reference file."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run read from its folder.

    config: the resolved config flattened to {"section.key": value} (lists as tuples).
    metrics: {column: float64 [iterations]} from metrics.csv, NaN where a cell is empty.
    timing: the same from timing.csv (wall clock per iteration); empty without that file.
    """

    path: pathlib.Path
    config: Mapping[str, Any]
    metrics: Mapping[str, np.ndarray]
    timing: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def task(self) -> Task:
        return (self.config["env.scenario"], self.config["env.agent_conf"])

    @property
    def algo(self) -> str:
        return self.config["algo.name"]

    @property
    def seed(self) -> int:
        return self.config["run.seed"]

    def series(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(env_steps int64 [k], values float64 [k]) of the k rows where `metric` has a value."""
        values = self.metrics.get(metric)
        if values is None:
            return np.zeros(0, np.int64), np.zeros(0)
        logged = ~np.isnan(values)
        return self.metrics["env_steps"][logged].astype(np.int64), values[logged]


@dataclasses.dataclass(frozen=True)
class Group:
    """The seeds of one setting on one task.

    label: e.g. 'HalfCheetah 2x3 happo (env.obs_mode=local)'; method: the label without the
    task ('happo (env.obs_mode=local)'), the same on every task; setting: {key: value} of the
    keys named in the label; runs: sorted by seed.
    """

    label: str
    task: Task
    algo: str
    method: str
    setting: Mapping[str, Any]
    runs: tuple[Run, ...]


@dataclasses.dataclass(frozen=True)
class Summary:
    """One row of the final-score table. Scores are NaN-free; std is NaN with one seed."""

    group: str
    task: Task
    algo: str
    method: str
    seeds: int
    mean: float
    std: float
    iqm: float
    iqm_low: float
    iqm_high: float
    final_env_steps: tuple[int, int]  # (min, max) over the group's runs
    published: float | None = None

    @property
    def ratio(self) -> float | None:
        """mean / published, None without a (non-zero) published value."""
        if self.published is None or self.published == 0:
            return None
        return self.mean / self.published


@dataclasses.dataclass(frozen=True)
class Throughput:
    """The wall clock of one group's runs on the machine that trained them (their timing.csv).

    A run's training time is the sum of its iterations' collection, update and evaluation
    seconds (start-up and checkpoint writes are not counted); its speed is its env steps over
    that time. Figures are what the machine gave while it ran, including anything else it ran.
    """

    group: str
    minutes: tuple[float, ...]  # training time per run with a timing.csv, in seed order
    env_steps_per_second: float  # median over those runs of env steps / training time
    shares: tuple[float, float, float]  # collection, update, evaluation: shares of the runs' total time


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """IQM across tasks of one method's scores divided by the published value of each task."""

    method: str
    tasks: tuple[Task, ...]
    seeds: int  # runs per task used (the smallest count over the tasks)
    iqm: float
    iqm_low: float
    iqm_high: float


# -- finding and reading runs -------------------------------------------------------------
def find_runs(paths: Iterable[str | pathlib.Path]) -> list[Run]:
    """Every run folder (config.yaml + metrics.csv) at or below each path, sorted by path.

    Raises PlotError for a path that does not exist or holds no run folder, and for a run
    whose files cannot be read.
    """
    found: dict[pathlib.Path, Run] = {}
    for path in map(pathlib.Path, paths):
        if not path.exists():
            raise PlotError(f"{path} does not exist")
        folders = sorted(p.parent for p in path.rglob(METRICS_FILE) if (p.parent / CONFIG_FILE).is_file())
        if not folders:
            raise PlotError(f"no run folders ({CONFIG_FILE} + {METRICS_FILE}) under {path}")
        for folder in folders:
            key = folder.resolve()
            if key not in found:
                found[key] = read_run(folder)
    return sorted(found.values(), key=lambda run: str(run.path))


def read_run(folder: str | pathlib.Path) -> Run:
    """The run in `folder`: its config checked against the schema and its metrics as float arrays."""
    folder = pathlib.Path(folder)
    try:
        config = config_lib.load(str(folder / CONFIG_FILE))
    except ConfigError as err:
        raise PlotError(f"run folder {folder}: {err}") from None
    flat = {f"{section}.{key}": _hashable(value) for section, values in config.to_dict().items() for key, value in values.items()}
    timing = _read_metrics(folder / TIMING_FILE) if (folder / TIMING_FILE).is_file() else {}
    return Run(folder, flat, _read_metrics(folder / METRICS_FILE), timing)


def _hashable(value: Any) -> Any:
    """A config value that can key a group: lists as tuples, mappings (env.options) as flow YAML."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=True).strip()
    return value


def _read_metrics(path: pathlib.Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = list(reader)
    if header is None:  # a run that has not finished its first iteration
        return {name: np.zeros(0) for name in INDEX_COLUMNS}
    if "env_steps" not in header:
        raise PlotError(f"{path} has no env_steps column (header: {','.join(header)})")
    if rows and len(rows[-1]) < len(header):
        log.warning("%s: ignoring its last line, which is incomplete (a run still writing it?)", path)
        rows.pop()
    columns: dict[str, list[float]] = {name: [] for name in header}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise PlotError(f"{path} line {line}: {len(row)} cells, the header has {len(header)}")
        for name, cell in zip(header, row):
            try:
                columns[name].append(float(cell) if cell != "" else math.nan)
            except ValueError:
                raise PlotError(f"{path} line {line}: {name} is not a number: {cell!r}") from None
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def select_metric(runs: Sequence[Run], metric: str) -> list[Run]:
    """The runs with at least one value of `metric`; the others are dropped with a warning.

    Raises PlotError if no run has such a column (naming the columns that exist) or no run has
    a value in it.
    """
    columns = sorted({name for run in runs for name in run.metrics} - set(INDEX_COLUMNS))
    if metric not in columns:
        raise PlotError(f"unknown metric {metric!r}; the runs' {METRICS_FILE} have: {', '.join(columns)}")
    kept = []
    for run in runs:
        if run.series(metric)[1].size:
            kept.append(run)
        else:
            log.warning("skipping %s: its %s column is empty", run.path, metric)
    if not kept:
        raise PlotError(f"metric {metric!r} is empty in every run (no evaluation yet?)")
    return kept


# -- grouping -----------------------------------------------------------------------------
def group_runs(runs: Sequence[Run], ignore: Iterable[str] = ()) -> dict[str, Group]:
    """Runs grouped by setting, keyed by label, in the order task, algorithm, label.

    A group is (task, algo.name, the values of the keys that differ between runs of that task
    and algorithm). Keys of the run section, env.num_threads and the keys in `ignore` never
    split a group. A method is named by every key that varies on some task for its algorithm,
    so that it has the same name on every task.
    """
    ignored = set(ignore) | set(NON_SETTING_KEYS)
    by_task_algo: dict[tuple[Task, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_task_algo[(run.task, run.algo)].append(run)
    varying: dict[str, set[str]] = defaultdict(set)
    for (_, algo), members in by_task_algo.items():
        for key in members[0].config:
            if key.split(".")[0] in NON_SETTING_SECTIONS or key in ignored:
                continue
            if len({run.config[key] for run in members}) > 1:
                varying[algo].add(key)

    groups: dict[str, Group] = {}
    for (task, algo), members in sorted(by_task_algo.items()):
        keys = sorted(varying[algo])
        settings: dict[tuple, list[Run]] = defaultdict(list)
        for run in members:
            settings[tuple(run.config[key] for key in keys)].append(run)
        for values, seeds in sorted(settings.items(), key=lambda item: _format_setting(keys, item[0])):
            method = algo + (f" ({_format_setting(keys, values)})" if keys else "")
            label = f"{task_name(task)} {method}"
            seeds.sort(key=lambda run: (run.seed, str(run.path)))
            _warn_repeated_seeds(label, seeds)
            groups[label] = Group(label, task, algo, method, dict(zip(keys, values)), tuple(seeds))
    return groups


def task_name(task: Task) -> str:
    """'HalfCheetah 2x3'; tasks without partitions (MPE, your own) by their scenario alone."""
    return f"{task[0]} {task[1]}" if task[0] in registry.partitioned_names() else task[0]


def _format_setting(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{key}={_format_value(value)}" for key, value in zip(keys, values))


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_format_value, value)) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _warn_repeated_seeds(label: str, runs: Sequence[Run]) -> None:
    by_seed: dict[int, list[str]] = defaultdict(list)
    for run in runs:
        by_seed[run.seed].append(str(run.path))
    for seed, paths in by_seed.items():
        if len(paths) > 1:
            log.warning("%s: seed %d appears in %d runs (%s); each counts as a seed", label, seed, len(paths), ", ".join(paths))


# -- statistics ---------------------------------------------------------------------------
def final_scores(group: Group, metric: str, window: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64 [n_runs], env_steps int64 [n_runs]) of the group's runs, in seed order.

    A run's score is the mean of its last `window` values of `metric` (all of them, with a
    warning, if it has fewer); env_steps is where its last value was logged.
    """
    if window < 1:
        raise PlotError(f"the final window must be >= 1, got {window}")
    scores, steps = [], []
    for run in group.runs:
        x, y = run.series(metric)
        if y.size < window:
            log.warning("%s has %d values of %s, fewer than the final window %d: its score averages them all", run.path, y.size, metric, window)
        scores.append(float(np.mean(y[-window:])))
        steps.append(int(x[-1]))
    return np.asarray(scores), np.asarray(steps, dtype=np.int64)


def learning_curve(group: Group, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps int64 [n_x], values float64 [n_runs, n_x]) at the env steps every run logged.

    Points that only some runs have (a longer run, another evaluation interval) are left out,
    with a warning; nothing is interpolated. n_x is 0 when the runs share no point.
    """
    series = [run.series(metric) for run in group.runs]
    common = series[0][0]
    for x, _ in series[1:]:
        common = np.intersect1d(common, x)
    dropped = max(x.size for x, _ in series) - common.size
    if dropped:
        log.warning("%s: the curve uses the %d points of %s that all %d runs logged (%d more in the longest run)",
                    group.label, common.size, metric, len(series), dropped)
    values = np.stack([y[np.searchsorted(x, common)] for x, y in series]) if common.size else np.zeros((len(series), 0))
    return common, values


def bootstrap_band(values: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
                   confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap confidence band over runs of the mean curve.

    values: float [n_runs, n_x]. With rng = np.random.default_rng(seed), resample r picks runs
    rng.integers(0, n_runs, (reps, n_runs))[r] (the same runs at every x); returns (low, high),
    each [n_x]: the (1 - confidence)/2 and (1 + confidence)/2 percentiles of the resampled means.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    picks = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    # How often each run is picked by each resample: [reps, n_runs], so the means are one matmul.
    counts = np.bincount((picks + n * np.arange(reps)[:, None]).ravel(), minlength=reps * n).reshape(reps, n)
    means = counts @ values / n
    tail = 50 * (1 - confidence)
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


def iqm_interval(scores: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0,
                 confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(IQM, low, high): rliable's aggregate_iqm of scores [n_runs, n_tasks] and its
    stratified-bootstrap percentile CI (runs resampled within each task) from
    rliable.library.get_interval_estimates.

    rliable 1.2 draws the resamples from NumPy's global RandomState (np.random.choice), whatever
    random_state it is given, so the global state is seeded with `seed` for the call and put back
    afterwards: the same as `np.random.seed(seed)` before a direct call.
    """
    from rliable import library, metrics

    scores = np.asarray(scores, dtype=np.float64)
    with _seeded_global_numpy(seed):
        points, intervals = library.get_interval_estimates(
            {"scores": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]),
            reps=reps, confidence_interval_size=confidence,
        )
    low, high = intervals["scores"][:, 0]
    return float(points["scores"][0]), float(low), float(high)


@contextlib.contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def load_reference(path: str | pathlib.Path) -> dict[tuple[str, str, str], float]:
    """Published numbers from a CSV with columns scenario,agent_conf,algo,value (others ignored).

    Returns {(scenario, agent_conf, algo): value}. Raises PlotError for a missing file or
    column, a value that is not a finite number, or a repeated (scenario, agent_conf, algo).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise PlotError(f"reference file {path} does not exist")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REFERENCE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PlotError(f"reference file {path} lacks the column(s) {', '.join(missing)}; "
                            f"expected a header {','.join(REFERENCE_COLUMNS)}, got {reader.fieldnames}")
        reference: dict[tuple[str, str, str], float] = {}
        for line, row in enumerate(reader, start=2):
            key = (row["scenario"].strip(), row["agent_conf"].strip(), row["algo"].strip())
            try:
                value = float(row["value"])
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise PlotError(f"reference file {path} line {line}: value must be a finite number, got {row['value']!r}")
            if key in reference:
                raise PlotError(f"reference file {path} line {line}: {' '.join(key)} appears twice")
            reference[key] = value
    return reference


def published_value(reference: Mapping[tuple[str, str, str], float] | None, task: Task, algo: str) -> float | None:
    return None if reference is None else reference.get((*task, algo))


def summary_table(groups: Mapping[str, Group], metric: str, window: int = 1,
                  reference: Mapping[tuple[str, str, str], float] | None = None,
                  reps: int = DEFAULT_REPS, seed: int = 0) -> list[Summary]:
    """One Summary per group (same order): final scores over seeds, their IQM with rliable's CI
    (each group bootstrapped with `seed`, so a group's CI does not depend on the others), and the
    published value of the group's task and algorithm when `reference` has one."""
    rows = []
    for group in groups.values():
        scores, steps = final_scores(group, metric, window)
        if steps.min() != steps.max():
            log.warning("%s: runs end at different env steps (%d to %d); their final scores are not from the same point",
                        group.label, steps.min(), steps.max())
        iqm, low, high = iqm_interval(scores[:, None], reps, seed)
        rows.append(Summary(
            group=group.label, task=group.task, algo=group.algo, method=group.method, seeds=scores.size,
            mean=float(scores.mean()), std=float(scores.std(ddof=1)) if scores.size > 1 else math.nan,
            iqm=iqm, iqm_low=low, iqm_high=high, final_env_steps=(int(steps.min()), int(steps.max())),
            published=published_value(reference, group.task, group.algo),
        ))
    return rows


def aggregate_normalised(groups: Mapping[str, Group], metric: str,
                         reference: Mapping[tuple[str, str, str], float], window: int = 1,
                         reps: int = DEFAULT_REPS, seed: int = 0) -> list[Aggregate]:
    """Per method: the IQM over tasks and seeds of final score / published value of the task and
    algorithm, with rliable's stratified-bootstrap CI (scores [n_runs, n_tasks]).

    Tasks without a positive published value are left out. rliable needs as many runs on every
    task: the first (lowest-seed) runs up to the smallest count are used, with a warning.
    """
    by_method: dict[str, list[Group]] = defaultdict(list)
    for group in groups.values():
        published = published_value(reference, group.task, group.algo)
        if published is None:
            continue
        if published <= 0:
            log.warning("%s: published value %g is not positive; left out of the normalised aggregate", group.label, published)
            continue
        by_method[group.method].append(group)
    aggregates = []
    for method, members in sorted(by_method.items()):
        seeds = min(len(g.runs) for g in members)
        if any(len(g.runs) > seeds for g in members):
            log.warning("%s: the aggregate uses the first %d seeds of every task (the fewest any task has)", method, seeds)
        columns = [final_scores(g, metric, window)[0][:seeds] / published_value(reference, g.task, g.algo) for g in members]
        iqm, low, high = iqm_interval(np.stack(columns, axis=1), reps, seed)
        aggregates.append(Aggregate(method, tuple(g.task for g in members), seeds, iqm, low, high))
    return aggregates


def throughput_table(groups: Mapping[str, Group]) -> list[Throughput]:
    """Per group whose runs have timing.csv files: the training time of each such run, their
    median speed (env steps per second of training time) and where the time went."""
    rows = []
    for label, group in groups.items():
        timed = [run for run in group.runs if run.timing.get("env_steps", np.zeros(0)).size and all(c in run.timing for c in TIME_COLUMNS)]
        if not timed:
            continue
        seconds = np.array([[np.nansum(run.timing[c]) for c in TIME_COLUMNS] for run in timed])  # [runs, 3]
        per_run = seconds.sum(axis=1)
        steps = np.array([run.timing["env_steps"][-1] for run in timed])
        rows.append(Throughput(label, tuple(per_run / 60), float(np.median(steps / per_run)), tuple(seconds.sum(axis=0) / seconds.sum())))
    return rows


# -- outputs ------------------------------------------------------------------------------
def table_columns(rows: Sequence[Summary], with_reference: bool) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the final-score table, for markdown and the terminal."""
    header = ["group", "seeds", "mean", "std", "IQM [95% CI]", "env steps"]
    if with_reference:
        header += ["published", "ratio"]
    cells = []
    for row in rows:
        line = [row.group, str(row.seeds), _fmt(row.mean), _fmt(row.std),
                f"{_fmt(row.iqm)} [{_fmt(row.iqm_low)}, {_fmt(row.iqm_high)}]", _fmt_steps(row.final_env_steps)]
        if with_reference:
            line += [_fmt(row.published), "" if row.ratio is None else f"{row.ratio:.3f}"]
        cells.append(line)
    return header, cells


def write_table(rows: Sequence[Summary], out: str | pathlib.Path, metric: str, window: int = 1,
                with_reference: bool = False, aggregates: Sequence[Aggregate] = (),
                throughput: Sequence[Throughput] = ()) -> list[pathlib.Path]:
    """final.csv (full precision) and final.md (the table, and the aggregate and the wall clock
    when given) in `out`."""
    out = pathlib.Path(out)
    fields = ["task", "algo", "method", "group", "seeds", "mean", "std", "iqm", "iqm_low", "iqm_high",
              "final_env_steps_min", "final_env_steps_max"] + (["published", "ratio"] if with_reference else [])
    with (out / "final.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for row in rows:
            line = [task_name(row.task), row.algo, row.method, row.group, row.seeds, row.mean, row.std,
                    row.iqm, row.iqm_low, row.iqm_high, *row.final_env_steps]
            if with_reference:
                line += ["" if row.published is None else row.published, "" if row.ratio is None else row.ratio]
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in line])

    header, cells = table_columns(rows, with_reference)
    last = "the last value" if window == 1 else f"the mean of the last {window} values"
    lines = [f"# Final {metric}", "",
             f"A run's score is {last} of {metric}; mean and std (ddof=1) over seeds; IQM with a 95% "
             "stratified-bootstrap CI (rliable); env steps where the runs' last value was logged.", "",
             *_markdown(header, cells)]
    if aggregates:
        lines += ["", "## Aggregate across tasks", "",
                  "IQM over tasks and seeds of score / published (1 = the published number), 95% stratified-bootstrap CI.", "",
                  *_markdown(["method", "tasks", "seeds per task", "IQM [95% CI]"],
                             [[a.method, ", ".join(map(task_name, a.tasks)), str(a.seeds),
                               f"{a.iqm:.3f} [{a.iqm_low:.3f}, {a.iqm_high:.3f}]"] for a in aggregates])]
    if throughput:
        lines += ["", "## Wall clock", "",
                  "Training time per run on the machine that ran it, from the runs' timing.csv: the sum of its "
                  "iterations' collection, update and evaluation seconds (start-up and checkpoint writes not "
                  "counted). env steps/s: the median over runs of env steps / training time.", "",
                  *_markdown(["group", "minutes per run", "env steps/s", "collect / update / eval"],
                             [[t.group, ", ".join(f"{m:.0f}" for m in t.minutes), _fmt(t.env_steps_per_second),
                               " / ".join(f"{100 * share:.0f}%" for share in t.shares)] for t in throughput])]
    (out / "final.md").write_text("\n".join(lines) + "\n")
    return [out / "final.csv", out / "final.md"]


def _markdown(header: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(line) + " |" for line in cells)]


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("s" if n != 1 else "")


def _fmt_steps(steps: tuple[int, int]) -> str:
    return f"{steps[0]:,}" if steps[0] == steps[1] else f"{steps[0]:,}-{steps[1]:,}"


def _colours(groups: Mapping[str, Group]) -> dict[str, Any]:
    """One colour per method, the same in every figure."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    methods = sorted({g.method for g in groups.values()})
    return {method: palette[i % len(palette)] for i, method in enumerate(methods)}


# Published values are black lines, one dash pattern per algorithm of the task.
_PUBLISHED_STYLES = ("--", ":", "-.", (0, (5, 2, 1, 2, 1, 2)), (0, (8, 3)), (0, (1, 4)))


def _by_task(groups: Mapping[str, Group]) -> dict[Task, list[Group]]:
    tasks: dict[Task, list[Group]] = defaultdict(list)
    for group in groups.values():
        tasks[group.task].append(group)
    return dict(sorted(tasks.items()))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def plot_curves(groups: Mapping[str, Group], metric: str, out: str | pathlib.Path,
                reference: Mapping[tuple[str, str, str], float] | None = None,
                reps: int = DEFAULT_REPS, seed: int = 0) -> list[pathlib.Path]:
    """One PNG per task, `curve_SCENARIO_CONF.png` in `out`: each group's mean over seeds vs env
    steps with its 95% bootstrap band (`bootstrap_band`), and the published values of the task's
    algorithms as dashed lines. Returns the files written."""
    from matplotlib.figure import Figure

    out = pathlib.Path(out)
    colours = _colours(groups)
    files = []
    for task, members in _by_task(groups).items():
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.add_subplot()
        for group in members:
            x, values = learning_curve(group, metric)
            if not x.size:
                log.warning("%s: its runs share no env step with a value of %s; no curve", group.label, metric)
                continue
            low, high = bootstrap_band(values, reps, seed)
            colour = colours[group.method]
            ax.plot(x, values.mean(axis=0), color=colour, marker="o" if x.size < 3 else None,
                    label=f"{group.method} (n={len(group.runs)})")
            ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
        algos = sorted({g.algo for g in members})
        for algo, style in zip(algos, itertools.cycle(_PUBLISHED_STYLES)):
            published = published_value(reference, task, algo)
            if published is not None:
                ax.axhline(published, color="black", linestyle=style, linewidth=1, label=f"{algo} (published)")
        ax.set(title=f"{task_name(task)}: mean over seeds, 95% bootstrap CI", xlabel="env steps", ylabel=metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        path = out / f"curve_{_slug(task[0])}_{_slug(task[1])}.png"
        fig.savefig(path, dpi=110)
        files.append(path)
    return files


def plot_iqm_per_task(rows: Sequence[Summary], out: str | pathlib.Path, metric: str,
                      groups: Mapping[str, Group]) -> pathlib.Path:
    """`iqm_per_task.png`: one panel per task (raw scores differ in scale between tasks) with each
    method's IQM and 95% CI, and published values as dashed lines."""
    from matplotlib.figure import Figure

    colours = _colours(groups)
    tasks: dict[Task, list[Summary]] = defaultdict(list)
    for row in rows:
        tasks[row.task].append(row)
    columns = min(len(tasks), 3)
    lines = math.ceil(len(tasks) / columns)
    height = max(len(v) for v in tasks.values())
    fig = Figure(figsize=(4.5 * columns, (1 + 0.45 * height) * lines + 0.5), layout="constrained")
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    for ax, (task, members) in zip(axes, sorted(tasks.items())):
        for y, row in enumerate(members):
            ax.errorbar([row.iqm], [y], xerr=[[row.iqm - row.iqm_low], [row.iqm_high - row.iqm]],
                        fmt="o", color=colours[row.method], capsize=3)
        algos = sorted({r.algo for r in members})
        for algo, style in zip(algos, itertools.cycle(_PUBLISHED_STYLES)):
            published = next(r.published for r in members if r.algo == algo)
            if published is not None:
                ax.axvline(published, color="black", linestyle=style, linewidth=1, label=f"{algo} (published)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
        ax.set_yticks(range(len(members)), [f"{r.method} (n={r.seeds})" for r in members], fontsize="small")
        ax.set_ylim(-0.7, len(members) - 0.3)
        ax.invert_yaxis()
        ax.set(title=task_name(task), xlabel=f"IQM of final {metric}")
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    path = pathlib.Path(out) / "iqm_per_task.png"
    fig.savefig(path, dpi=110)
    return path


def plot_aggregate(aggregates: Sequence[Aggregate], out: str | pathlib.Path, groups: Mapping[str, Group]) -> pathlib.Path:
    """`aggregate_iqm.png`: each method's IQM of normalised scores across tasks with its 95% CI."""
    from matplotlib.figure import Figure

    colours = _colours(groups)
    fig = Figure(figsize=(6.5, 1.2 + 0.5 * len(aggregates)), layout="constrained")
    ax = fig.add_subplot()
    for y, agg in enumerate(aggregates):
        ax.errorbar([agg.iqm], [y], xerr=[[agg.iqm - agg.iqm_low], [agg.iqm_high - agg.iqm]],
                    fmt="o", color=colours[agg.method], capsize=3)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(aggregates)), [f"{a.method} ({_count(len(a.tasks), 'task')}, n={a.seeds})" for a in aggregates])
    ax.set_ylim(-0.7, len(aggregates) - 0.3)
    ax.invert_yaxis()
    ax.set(xlabel="IQM of score / published (95% CI)", title="Across tasks")
    ax.grid(axis="x", alpha=0.3)
    path = pathlib.Path(out) / "aggregate_iqm.png"
    fig.savefig(path, dpi=110)
    return path


@dataclasses.dataclass
class Report:
    """What `report` computed and wrote."""

    groups: dict[str, Group]
    rows: list[Summary]
    aggregates: list[Aggregate]
    throughput: list[Throughput]
    files: list[pathlib.Path]


def report(paths: Iterable[str | pathlib.Path], out: str | pathlib.Path, metric: str = DEFAULT_METRIC,
           window: int = 1, reference: str | pathlib.Path | None = None, reps: int = DEFAULT_REPS,
           seed: int = 0, ignore: Iterable[str] = ()) -> Report:
    """Everything `hapo-plot` does: find and group runs, then write to `out` the curves per task,
    final.csv / final.md (with the wall clock of runs that have a timing.csv), iqm_per_task.png and, with a reference, aggregate_iqm.png."""
    published = None if reference is None else load_reference(reference)
    groups = group_runs(select_metric(find_runs(paths), metric), ignore)
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise PlotError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_table(groups, metric, window, published, reps, seed)
    aggregates = [] if published is None else aggregate_normalised(groups, metric, published, window, reps, seed)
    if published is not None and not aggregates:
        log.warning("no group has a positive published value in %s: no aggregate plot", reference)
    files = plot_curves(groups, metric, out, published, reps, seed)
    throughput = throughput_table(groups)
    files += write_table(rows, out, metric, window, published is not None, aggregates, throughput)
    files.append(plot_iqm_per_task(rows, out, metric, groups))
    if aggregates:
        files.append(plot_aggregate(aggregates, out, groups))
    return Report(groups, rows, aggregates, throughput, files)


# -- command line -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hapo-plot",
        description=(
            "Learning curves and final-score statistics across seeds of hapo runs. Finds every run "
            f"folder ({CONFIG_FILE} + {METRICS_FILE}) under the paths and groups runs by task, "
            "algorithm and every config key that differs between runs of one task and algorithm "
            "(never by the run section: seed, length, evaluation, logging, threads; nor by "
            "env.num_threads). Writes to --out: curve_SCENARIO_CONF.png per task (mean over seeds, "
            "95% bootstrap band over seeds at the env steps all runs of a group logged), final.csv "
            "and final.md (seeds, mean, std, IQM with rliable's 95% stratified-bootstrap CI, final "
            "env steps; and the training time and env steps/s per group from the runs' timing.csv), iqm_per_task.png and, with --reference, aggregate_iqm.png (IQM across tasks "
            "of score / published)."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="Run folders or folders holding them, at any depth.")
    parser.add_argument("--metric", default=DEFAULT_METRIC, help="Column of metrics.csv to plot and score (default %(default)s).")
    parser.add_argument("--out", required=True, help="Folder for the PNGs and tables (created if needed).")
    parser.add_argument("--reference", metavar="FILE", help="CSV of published numbers with columns scenario,agent_conf,algo,value.")
    parser.add_argument("--final-window", type=int, default=1, metavar="K",
                        help="A run's final score is the mean of its last K values of the metric (default %(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every bootstrap (default %(default)s).")
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help="Bootstrap resamples (default %(default)s).")
    parser.add_argument("--ignore", action="append", default=[], metavar="SECTION.KEY",
                        help="A config key whose differences do not split groups (repeatable).")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.final_window < 1:
        parser.error(f"--final-window must be >= 1, got {args.final_window}")
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    known = set(_flat_keys())
    for key in args.ignore:
        if key not in known:
            parser.error(f"--ignore {key}: not a config key; valid keys: {', '.join(sorted(known))}")
    _setup_logging()
    try:
        result = report(args.paths, args.out, args.metric, args.final_window, args.reference, args.reps, args.seed, args.ignore)
    except PlotError as err:
        parser.error(str(err))
    _print_report(result, args.reference is not None)
    return 0


def _flat_keys() -> list[str]:
    return [f"{section}.{key}" for section, values in config_lib.Config().to_dict().items() for key in values]


def _setup_logging() -> None:
    """Warnings to stderr through rich, unless the process already configured logging."""
    if logging.getLogger().handlers:
        return
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler])


def _print_report(result: Report, with_reference: bool) -> None:
    """The table to stdout: a rich table on a terminal, markdown (as in final.md) otherwise."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    header, cells = table_columns(result.rows, with_reference)
    console = Console(soft_wrap=True, highlight=False)
    if console.is_terminal:
        table = Table(*header)
        for line in cells:
            table.add_row(*map(Text, line))
        console.print(table)
    else:
        console.print("\n".join(_markdown(header, cells)), markup=False)
    for agg in result.aggregates:
        console.print(f"across {_count(len(agg.tasks), 'task')}, {agg.method}: IQM of score / published "
                      f"{agg.iqm:.3f} [{agg.iqm_low:.3f}, {agg.iqm_high:.3f}]", markup=False)
    console.print("wrote " + " ".join(str(path) for path in result.files), markup=False)


if __name__ == "__main__":
    sys.exit(main())
