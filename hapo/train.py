"""The trainer's shared skeleton: seeding, environments, evaluation, logging, videos, checkpoints and
resume, and the bookkeeping of an iteration. What an iteration collects and how it updates is the
training loop of the algorithm's family: `hapo.onpolicy.OnPolicyTrainer` (rollout -> GAE -> the
agents' and critics' updates) or, for the off-policy algorithms, `hapo.offpolicy.OffPolicyTrainer`.

Python API::

    from hapo.config import Config, load
    from hapo.train import Trainer

    trainer = Trainer(load("toy_reach"), run_dir="runs/demo")   # or Trainer(Config(...)) for no files
    rows = trainer.train(iterations=20)        # one dict of metrics per iteration
    policy = trainer.policy()                  # act(obs, deterministic=True) -> actions per agent
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import pathlib
import random
import shutil
import time
from abc import ABC, abstractmethod

import numpy as np
import torch

import hapo
from hapo import checkpoint as checkpoint_lib
from hapo import config as config_lib
from hapo.algos import ALGORITHMS
from hapo.checkpoint import CheckpointError
from hapo.config import Config, ConfigError
from hapo.envs import make as make_mujoco_env
from hapo.envs import registry, toy
from hapo.evaluation import evaluate_policy
from hapo.logger import METRICS_FILE, TIMING_FILE, ProgressBar, RunLogger
from hapo.models import JointPolicy
from hapo.video import has_renderer, record_video

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.yaml"
# What a run writes in its folder: a run started over there removes these, and nothing else.
RUN_OUTPUTS = (METRICS_FILE, TIMING_FILE, "tensorboard", "videos", CHECKPOINT_FILE, CONFIG_FILE)
EVAL_SEED_OFFSET = 1_000_003
VIDEO_SIZE = (320, 240)


def make_env(env_cfg: config_lib.EnvConfig, num_envs: int, seed: int):
    """The batched env of a config: its entry point or registered env (`hapo.envs.registry`),
    else a toy scenario of hapo.envs.toy or a MuJoCo one of hapo.envs.make."""
    registration = registry.lookup(env_cfg.scenario, env_cfg.entry_point)
    if registration is not None:
        return registry.make_registered(
            registration, num_envs=num_envs, seed=seed, options=env_cfg.options, vector=env_cfg.vector, processes=env_cfg.num_threads,
        )
    make = toy.make if env_cfg.scenario in toy.SCENARIOS else make_mujoco_env
    return make(
        env_cfg.scenario, env_cfg.agent_conf, num_envs=num_envs, num_threads=env_cfg.num_threads,
        seed=seed, agent_obsk=env_cfg.agent_obsk, obs_mode=env_cfg.obs_mode,
    )


@functools.cache
def bf16_matmul_supported() -> bool:
    """Whether float32 matrix products do take bfloat16-rounded inputs under the bf16 precision on
    this CPU: oneDNN may report bfloat16 support and still multiply exactly (seen on an AVX-512 BF16
    CPU without AMX), so a [256, 256] product of 1 + 2**-10 (1 in bfloat16) by ones is taken."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    x, w = torch.full((256, 256), 1 + 2**-10), torch.ones(256, 256)
    precision = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        return bool(((x @ w) == 256).all())
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = precision


@contextlib.contextmanager
def update_settings(run: config_lib.RunConfig):
    """The update's torch threads and float32 matmul precision; the collection's are restored after it."""
    precision = torch.backends.mkldnn.matmul.fp32_precision
    torch.set_num_threads(run.update_torch_threads)
    torch.backends.mkldnn.matmul.fp32_precision = run.update_matmul_precision
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = precision
        torch.set_num_threads(run.torch_threads)


def trainer_class(config: Config) -> type[Trainer]:
    """The training loop of the config's algorithm: on-policy or off-policy."""
    from hapo.offpolicy import OffPolicyTrainer
    from hapo.onpolicy import OnPolicyTrainer

    return OffPolicyTrainer if ALGORITHMS[config.algo.name].off_policy else OnPolicyTrainer


def iteration_length(config: Config) -> tuple[str, int]:
    """The config key that sets an iteration's steps per environment, and its value."""
    if ALGORITHMS[config.algo.name].off_policy:
        return "algo.train_interval", config.algo.train_interval
    return "algo.rollout_length", config.algo.rollout_length


def iteration_env_steps(config: Config) -> int:
    """Env steps of one iteration: env.num_envs times `iteration_length`."""
    return config.env.num_envs * iteration_length(config)[1]


class Trainer(ABC):
    """Training of one actor per agent (or shared actors) and the algorithm's critics.

    `Trainer(config, run_dir)` makes the trainer of the config's algorithm (`trainer_class`), a
    subclass that fills in `_collect`, `_update` and what its checkpoint holds besides this
    skeleton's random number generators, environments, episode counters and counters.

    Args:
      config: the resolved configuration.
      run_dir: where metrics.csv, timing.csv, TensorBoard files, config.yaml and
        checkpoints go; None keeps everything in memory.
    """

    # Set by the subclass: the agents' actors (shared actors appear once per agent) and the
    # joint policy that acts with them (evaluation, videos).
    actors: list
    distinct_actors: list
    joint_policy: JointPolicy

    def __new__(cls, config: Config, run_dir: str | os.PathLike | None = None):
        loop = trainer_class(config)
        if not issubclass(loop, cls):
            raise ConfigError(f"algo.name {config.algo.name} is trained by {loop.__name__}, not {cls.__name__}")
        return super().__new__(loop)

    def __init__(self, config: Config, run_dir: str | os.PathLike | None = None):
        self.config = cfg = config
        self.run_dir = None if run_dir is None else pathlib.Path(run_dir)
        torch.set_num_threads(cfg.run.torch_threads)
        if cfg.run.update_matmul_precision == "bf16" and not bf16_matmul_supported():
            raise ConfigError(
                "run.update_matmul_precision bf16 needs oneDNN's bfloat16 matrix products, which this CPU lacks "
                "(they need AVX-512, and are fast with AMX or AVX-512 BF16): use ieee"
            )
        seeds = np.random.SeedSequence(cfg.run.seed).generate_state(4)
        random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        torch.manual_seed(cfg.run.seed)
        self.sample_generator = torch.Generator().manual_seed(int(seeds[0]))
        self.minibatch_generator = torch.Generator().manual_seed(int(seeds[1]))
        self.permutation_rng = np.random.default_rng(int(seeds[2]))

        self.env = make_env(cfg.env, cfg.env.num_envs, seed=int(seeds[3]))
        self.eval_env = make_env(cfg.env, cfg.run.eval_num_envs, seed=int(seeds[3]) + EVAL_SEED_OFFSET) if cfg.run.eval_interval else None
        self.steps_per_iteration = iteration_env_steps(cfg)
        self.total_iterations = cfg.run.num_env_steps // self.steps_per_iteration
        if self.total_iterations < 1:
            key, _ = iteration_length(cfg)
            raise ConfigError(
                f"run.num_env_steps ({cfg.run.num_env_steps}) is less than one iteration's batch: "
                f"env.num_envs * {key} = {self.steps_per_iteration}"
            )

        self.iteration = 0
        self.env_steps = 0
        num_envs = self.env.num_envs
        self.episode_return = np.zeros(num_envs)
        self.episode_length = np.zeros(num_envs, np.int64)
        self.recent_returns: collections.deque[float] = collections.deque(maxlen=num_envs)
        self.recent_lengths: collections.deque[int] = collections.deque(maxlen=num_envs)
        self.history: list[dict[str, float | int | None]] = []
        self.last_win_rate: float | None = None  # of the latest evaluation, for envs that report wins
        self._logger: RunLogger | None = None
        self._resumed_at: tuple[int, int] | None = None
        self._resumed_rows: list[dict] | None = None

    # -- what a training loop fills in -------------------------------------------------
    @abstractmethod
    def _collect(self) -> None:
        """Step the environments for one iteration (`steps_per_iteration` env steps), calling
        `_track_episodes` after every step."""

    @abstractmethod
    def _update(self) -> dict[str, float | None]:
        """Learn from what was collected; return the iteration's metrics by name (the same names
        every iteration, None where a value does not exist)."""

    @abstractmethod
    def _loop_state(self) -> dict:
        """The loop's share of a checkpoint: "actors", "updaters", "critic", "critic_update",
        "current" (what the agents see now) and whatever else it needs to continue exactly."""

    @abstractmethod
    def _load_loop_state(self, checkpoint: dict, path: str | os.PathLike) -> None:
        """Restore what `_loop_state` saved (errors through `checkpoint_lib.restoring`)."""

    @classmethod
    @abstractmethod
    def checkpoint_actors(cls, checkpoint: dict, config: Config) -> list:
        """The actors of a checkpoint (one per agent), built from its "spaces" without an env."""

    def spaces(self) -> dict:
        """The agents' sizes as a checkpoint records them (load_policy builds actors from them)."""
        env = self.env
        return {
            "obs_sizes": [int(n) for n in env.obs_sizes],
            "action_sizes": [int(n) for n in env.action_sizes],
            "action_kind": env.action_kind,
            # Only for mixed teams: older checkpoints' spaces stay equal to their runs'.
            **({"action_kinds": list(registry.action_kinds(env))} if env.action_kind == "mixed" else {}),
        }

    # -- public API ------------------------------------------------------------------
    def policy(self) -> JointPolicy:
        """The agents' current policies (a copy of their weights) to act with."""
        return JointPolicy(self.actors)

    def train(self, iterations: int | None = None) -> list[dict]:
        """Run `iterations` iterations (default: until run.num_env_steps); return their metric rows."""
        count = self.total_iterations - self.iteration if iterations is None else iterations
        rows = []
        bar = ProgressBar(self.total_iterations * self.steps_per_iteration, self.env_steps) if self.config.run.progress else None
        try:
            for _ in range(count):
                rows.append(self.iterate())
                if bar is not None:
                    bar.update(self.env_steps, self.last_timing["env_steps_per_second"], rows[-1])
        finally:
            if bar is not None:
                bar.close()
            if self._logger is not None:
                self._logger.close()
                self._logger = None
        return rows

    def iterate(self) -> dict[str, float | int | None]:
        """One iteration: collect, update, maybe evaluate, log, maybe checkpoint. Returns its metrics."""
        cfg = self.config
        start = time.perf_counter()
        self._collect()
        collected = time.perf_counter()
        with update_settings(cfg.run):
            update = self._update()
        updated = time.perf_counter()
        self.iteration += 1
        self.env_steps += self.steps_per_iteration
        last = self.iteration == self.total_iterations
        eval_return = None
        self.last_win_rate = None
        if self.eval_env is not None and (self.iteration % cfg.run.eval_interval == 0 or last):
            eval_return = self._evaluate_on_schedule()
        evaluated = time.perf_counter()
        row: dict[str, float | int | None] = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "train_return": _mean_or_none(self.recent_returns),
            "train_episode_length": _mean_or_none(self.recent_lengths),
            "eval_return": eval_return,
            # Envs that can be won (SMAX): the evaluation's fraction of episodes won.
            **({"eval_win_rate": self.last_win_rate} if getattr(self.env, "reports_wins", False) else {}),
            **update,
        }
        timing = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "collect_seconds": collected - start,
            "update_seconds": updated - collected,
            "eval_seconds": evaluated - updated,
            "collect_steps_per_second": self.steps_per_iteration / (collected - start),
            "env_steps_per_second": self.steps_per_iteration / (evaluated - start),
        }
        self.history.append(row)
        self.last_timing = timing
        if self.run_dir is not None:
            self._log(row, timing)
            videos = cfg.run.video_interval
            if videos and (last or self.iteration % videos == 0) and has_renderer(cfg.env.scenario):
                self.film()
            interval = cfg.run.checkpoint_interval
            if last or (interval and self.iteration % interval == 0):
                self.save_checkpoint()
        return row

    def _track_episodes(self, reward: np.ndarray, done: np.ndarray) -> None:
        self.episode_return += reward
        self.episode_length += 1
        for j in np.flatnonzero(done):
            self.recent_returns.append(float(self.episode_return[j]))
            self.recent_lengths.append(int(self.episode_length[j]))
        self.episode_return[done] = 0.0
        self.episode_length[done] = 0

    # -- evaluation ------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, episodes: int | None = None) -> float:
        """Mean return of deterministic episodes (default run.eval_episodes) on the separate
        evaluation env, every env playing whole episodes in rounds (`hapo.evaluation.evaluate_policy`)."""
        if self.eval_env is None:
            raise ValueError("evaluation is off (run.eval_interval = 0): no evaluation env")
        episodes = self.config.run.eval_episodes if episodes is None else episodes
        played = evaluate_policy(self.joint_policy, self.eval_env, episodes, clip_actions=self.config.env.clip_actions)
        self.last_win_rate = played.win_rate
        return float(np.mean(played.returns))

    def _evaluate_on_schedule(self) -> float:
        """evaluate(); a final evaluation off the run.eval_interval grid leaves the evaluation
        envs as they were, so that a run extended later evaluates as one never stopped."""
        if self.iteration % self.config.run.eval_interval == 0:
            return self.evaluate()
        snapshot = self.eval_env.snapshot()
        try:
            return self.evaluate()
        finally:
            self.eval_env.restore(snapshot)

    # -- outputs ---------------------------------------------------------------------
    def film(self) -> pathlib.Path:
        """Film one deterministic episode (at most run.video_steps) of the current team to
        run_dir/videos/iterationN.mp4, and show it in TensorBoard. Uses its own env: the run's
        numbers do not change."""
        assert self.run_dir is not None and self._logger is not None
        path = self.run_dir / "videos" / f"iteration{self.iteration}.mp4"
        path.parent.mkdir(exist_ok=True)
        frames: list[np.ndarray] = []
        record_video(
            self.joint_policy, self.config.env, path, seed=self.config.run.seed, width=VIDEO_SIZE[0],
            height=VIDEO_SIZE[1], max_steps=self.config.run.video_steps, on_frame=frames.append,
        )
        fps = 1.0 / self.env.dt
        # Every other frame keeps the TensorBoard GIF small; it plays at real time all the same.
        self._logger.video("video/episode", frames[::2], fps / 2, self.env_steps)
        return path

    def _log(self, row: dict, timing: dict) -> None:
        if self._logger is None:
            self._open_outputs()
        self._logger.write(row, timing)

    def _open_outputs(self) -> None:
        """The logger, then config.yaml (rewritten: a resumed run may have a new length)."""
        assert self.run_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._logger = RunLogger(self.run_dir, self.config.run.tensorboard, self._resumed_at, self._resumed_rows)
        self._resumed_at = self._resumed_rows = None
        config_lib.save(self.config, self.run_dir / CONFIG_FILE)

    def save_checkpoint(self) -> pathlib.Path:
        """Write everything needed to continue exactly to run_dir/checkpoint.pt (atomically)."""
        assert self.run_dir is not None
        to_plain = checkpoint_lib.to_plain
        checkpoint = {
            "format": checkpoint_lib.FORMAT,
            "hapo_version": hapo.__version__,
            "config": self.config.to_dict(),
            # What load_policy needs to rebuild the actors without making an env.
            "spaces": self.spaces(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            # The metrics rows so far, from which a resume rewrites metrics.csv.
            "metrics": [dict(row) for row in self.history],
            **self._loop_state(),
            "rng": {
                "python": checkpoint_lib.python_rng_state(),
                "numpy": checkpoint_lib.numpy_rng_state(),
                "torch": torch.get_rng_state(),
                "sample": self.sample_generator.get_state(),
                "minibatch": self.minibatch_generator.get_state(),
                "permutation": to_plain(self.permutation_rng.bit_generator.state, "permutation rng"),
            },
            "env": to_plain(self.env.snapshot(), "env snapshot"),
            "eval_env": None if self.eval_env is None else to_plain(self.eval_env.snapshot(), "eval env snapshot"),
            "episodes": {
                "return": to_plain(self.episode_return),
                "length": to_plain(self.episode_length),
                "recent_returns": list(self.recent_returns),
                "recent_lengths": list(self.recent_lengths),
            },
        }
        return checkpoint_lib.write(self.run_dir / CHECKPOINT_FILE, checkpoint)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by `save_checkpoint` of a run with the same config.

        The file is read with `torch.load(weights_only=True)`: no code runs. A file that is
        not such a checkpoint raises `CheckpointError` (a ValueError) naming it and the
        problem; if that happens after restoring has begun, make a new Trainer.
        """
        checkpoint = checkpoint_lib.read(path)
        _check_checkpoint_config(checkpoint, self.config, path)
        self._restore(checkpoint, path)

    def _restore(self, checkpoint: dict, path: str | os.PathLike) -> None:
        spaces = self.spaces()
        if checkpoint["spaces"] != spaces:
            raise CheckpointError(f"checkpoint {path} is of agents {checkpoint['spaces']}, this run's env has {spaces}")
        from_plain = checkpoint_lib.from_plain
        self._load_loop_state(checkpoint, path)
        with checkpoint_lib.restoring(path, "the random number generators"):
            rng = checkpoint["rng"]
            checkpoint_lib.set_python_rng_state(rng["python"])
            checkpoint_lib.set_numpy_rng_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])
            self.sample_generator.set_state(rng["sample"])
            self.minibatch_generator.set_state(rng["minibatch"])
            self.permutation_rng.bit_generator.state = from_plain(rng["permutation"])
        with checkpoint_lib.restoring(path, "the environments' snapshot"):
            self.env.restore(from_plain(checkpoint["env"]))
            if self.eval_env is not None:
                self.eval_env.restore(from_plain(checkpoint["eval_env"]))
        with checkpoint_lib.restoring(path, "the episode counters"):
            episodes = checkpoint["episodes"]
            self.episode_return[:] = from_plain(episodes["return"])
            self.episode_length[:] = from_plain(episodes["length"])
            self.recent_returns.extend(episodes["recent_returns"])
            self.recent_lengths.extend(episodes["recent_lengths"])
        self.iteration = checkpoint["iteration"]
        self.env_steps = checkpoint["env_steps"]
        self.joint_policy.refresh()
        self._resumed_at = (self.iteration, self.env_steps)
        with checkpoint_lib.restoring(path, "the metrics rows"):
            rows = checkpoint.get("metrics")  # None in checkpoints written before they kept the rows
            self.history = [dict(row) for row in rows or []]
            self._resumed_rows = None if rows is None else self.history[: self.iteration]

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, num_env_steps: int | None = None, progress: bool | None = None) -> Trainer:
        """A trainer continuing the run in `run_dir` from its checkpoint (optionally to a new length).

        The checkpoint is read and checked against the run's config.yaml before anything is
        built; a bad one raises `CheckpointError` and leaves the run folder untouched, and so
        does a `num_env_steps` below the steps the run has done (`ConfigError`). Then the run's
        outputs are made whole again: config.yaml is rewritten (from the checkpoint's config
        if it was missing or empty) and metrics.csv holds the checkpoint's rows.
        """
        run_dir = pathlib.Path(run_dir)
        config, checkpoint = _read_run(run_dir)
        trainer = cls(config, run_dir)
        trainer._restore(checkpoint, run_dir / CHECKPOINT_FILE)
        changes = [] if num_env_steps is None else [f"run.num_env_steps={num_env_steps}"]
        changes += [] if progress is None else [f"run.progress={progress}"]
        trainer.config = config.with_overrides(changes)
        trainer.total_iterations = trainer.config.run.num_env_steps // trainer.steps_per_iteration
        if trainer.total_iterations < trainer.iteration:
            raise ConfigError(
                f"run {run_dir} has done {trainer.env_steps} env steps ({trainer.iteration} iterations of {trainer.steps_per_iteration}): "
                f"num_env_steps {trainer.config.run.num_env_steps} is below that; give more to extend the run"
            )
        trainer._open_outputs()
        return trainer


def remove_outputs(run_dir: str | os.PathLike) -> None:
    """Remove a run's outputs (RUN_OUTPUTS) from `run_dir`, to start the run over there."""
    for name in RUN_OUTPUTS:
        path = pathlib.Path(run_dir) / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def load_policy(run_dir: str | os.PathLike) -> tuple[Config, JointPolicy]:
    """The config and the agents' policies at the checkpoint of the run in `run_dir`, to act with.

    Reads only config.yaml and checkpoint.pt (with `weights_only=True`): no environment is
    built, since the checkpoint records the agents' observation and action sizes. Raises
    FileNotFoundError for a folder without them, CheckpointError (a ValueError) for a bad
    or mismatched checkpoint.
    """
    run_dir = pathlib.Path(run_dir)
    config, checkpoint = _read_run(run_dir)
    with checkpoint_lib.restoring(run_dir / CHECKPOINT_FILE, "the actors"):
        actors = trainer_class(config).checkpoint_actors(checkpoint, config)
    return config, JointPolicy(actors)


def distinct_actors(actors: list) -> list:
    """The actor objects in order of first appearance: the order of a checkpoint's "actors"."""
    return list({id(a): a for a in actors}.values())


def load_actor_states(actors: list, states: list[dict]) -> None:
    for actor, state in zip(actors, states, strict=True):
        actor.load_state_dict(state)


def _read_run(run_dir: pathlib.Path) -> tuple[Config, dict]:
    """The config and the checked checkpoint of a run folder: the config of config.yaml, or of
    the checkpoint where config.yaml is missing or empty (as a kill while an older hapo
    rewrote it could leave it)."""
    config_path, checkpoint_path = run_dir / CONFIG_FILE, run_dir / CHECKPOINT_FILE
    if not checkpoint_path.is_file():
        has = "has a config.yaml but" if config_path.is_file() else "holds no run:"
        raise FileNotFoundError(f"run folder {run_dir} {has} no {CHECKPOINT_FILE} (a run writes it every run.checkpoint_interval iterations and at the end)")
    checkpoint = checkpoint_lib.read(checkpoint_path)
    if config_path.is_file() and config_path.read_text(encoding="utf-8", errors="replace").strip():
        config = config_lib.load(str(config_path))
        _check_checkpoint_config(checkpoint, config, checkpoint_path)
        return config, checkpoint
    log.warning("%s is %s: using the config its checkpoint holds", config_path, "empty" if config_path.exists() else "missing")
    with checkpoint_lib.restoring(checkpoint_path, "the config"):
        return Config.from_dict(checkpoint["config"]), checkpoint


def _check_checkpoint_config(checkpoint: dict, config: Config, path: str | os.PathLike) -> None:
    # A key missing from the checkpoint's config joined the schema after the run was written,
    # with a default that keeps what the run did then (e.g. algo.a2c_epochs for a HAPPO run).
    defaults = Config().to_dict()
    saved = {section: {**defaults.get(section, {}), **values} for section, values in checkpoint["config"].items()}
    differences = config_lib.run_defining_differences(saved, config.to_dict())
    if differences:
        raise CheckpointError(f"checkpoint {path} was written with another config: {', '.join(differences)} differ")


def _mean_or_none(values) -> float | None:
    return float(np.mean(values)) if values else None


def run_name(config: Config) -> str:
    """The default run folder name: scenario-agent_conf-algo-seed (scenario-algo-seed for MPE and
    your own environments, which take no agent_conf)."""
    env = config.env
    task = f"{env.scenario}-{env.agent_conf}" if not env.entry_point and env.scenario in registry.partitioned_names() else env.scenario
    return f"{task}-{config.algo.name}-seed{config.run.seed}"
