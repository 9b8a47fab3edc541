"""The on-policy training loop: collect a batch with all agents, GAE, the agents' updates (by the
algorithm's scheme: sequential with the compound factor, or simultaneous), the critics' update.

Python API::

    from hapo.config import Config, load
    from hapo.train import Trainer

    trainer = Trainer(load("toy_reach"), run_dir="runs/demo")   # or Trainer(Config(...)) for no files
    rows = trainer.train(iterations=20)        # one dict of metrics per iteration
    policy = trainer.policy()                  # act(obs, deterministic=True) -> actions per agent
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import random
import time

import numpy as np
import torch

import hapo
from hapo import checkpoint as checkpoint_lib
from hapo import config as config_lib
from hapo.algos import ALGORITHMS, ON_POLICY_SCHEMES, ActorUpdate, AgentData, Critics, CriticUpdate
from hapo.checkpoint import CheckpointError
from hapo.config import Config, ConfigError
from hapo.envs import make as make_mujoco_env
from hapo.envs import toy
from hapo.evaluation import env_actions, evaluate_policy
from hapo.logger import ProgressBar, RunLogger
from hapo.models import Actor, Critic, JointPolicy, ValueNormalizer
from hapo.rollout import RolloutStorage, check_env_output
from hapo.video import has_renderer, record_video

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.yaml"
EVAL_SEED_OFFSET = 1_000_003
VIDEO_SIZE = (320, 240)


def make_env(env_cfg: config_lib.EnvConfig, num_envs: int, seed: int):
    """The batched env of a config: toy scenarios from hapo.envs.toy, all others from hapo.envs.make."""
    make = toy.make if env_cfg.scenario in toy.SCENARIOS else make_mujoco_env
    return make(
        env_cfg.scenario, env_cfg.agent_conf, num_envs=num_envs, num_threads=env_cfg.num_threads,
        seed=seed, agent_obsk=env_cfg.agent_obsk, obs_mode=env_cfg.obs_mode,
    )


class Trainer:
    """On-policy training of one actor per agent (or shared actors) and the algorithm's critics.

    The algorithm's entry in `hapo.algos.ALGORITHMS` gives the per-agent update, the scheme
    that combines the agents' updates and the critic kind (one V(state), or V_i(o_i) per agent).

    Args:
      config: the resolved configuration.
      run_dir: where metrics.csv, timing.csv, TensorBoard files, config.yaml and
        checkpoints go; None keeps everything in memory.
    """

    def __init__(self, config: Config, run_dir: str | os.PathLike | None = None):
        self.config = cfg = config
        self.run_dir = None if run_dir is None else pathlib.Path(run_dir)
        torch.set_num_threads(cfg.run.torch_threads)
        seeds = np.random.SeedSequence(cfg.run.seed).generate_state(4)
        random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        torch.manual_seed(cfg.run.seed)
        self.sample_generator = torch.Generator().manual_seed(int(seeds[0]))
        self.minibatch_generator = torch.Generator().manual_seed(int(seeds[1]))
        self.permutation_rng = np.random.default_rng(int(seeds[2]))

        self.env = make_env(cfg.env, cfg.env.num_envs, seed=int(seeds[3]))
        self.eval_env = make_env(cfg.env, cfg.run.eval_num_envs, seed=int(seeds[3]) + EVAL_SEED_OFFSET) if cfg.run.eval_interval else None
        env = self.env
        self.batch_size = cfg.env.num_envs * cfg.algo.rollout_length
        self.total_iterations = cfg.run.num_env_steps // self.batch_size
        if self.total_iterations < 1:
            raise ConfigError(
                f"run.num_env_steps ({cfg.run.num_env_steps}) is less than one iteration's batch: "
                f"env.num_envs * algo.rollout_length = {self.batch_size}"
            )

        self.actors = build_actors(env.obs_sizes, env.action_sizes, env.action_kind, cfg)
        distinct = _distinct(self.actors)
        algorithm = ALGORITHMS[cfg.algo.name]
        by_actor: dict[int, ActorUpdate] = {id(a): algorithm.actor_update(a, cfg.algo) for a in distinct}
        self.distinct_actors = distinct
        self.updaters = [by_actor[id(a)] for a in self.actors]
        self.update_scheme = ON_POLICY_SCHEMES[algorithm.scheme]
        self.critics = Critics(algorithm.critic, env.obs_sizes, env.state_size, cfg)
        self.joint_policy = JointPolicy(self.actors)

        obs, state, info = env.reset()
        check_env_output(env, obs, state, info)
        self.storage = RolloutStorage(
            env, cfg.algo.rollout_length, with_masks="action_mask" in info, with_next_obs=self.critics.needs_next_obs,
        )
        self.storage.write_observation(0, obs, state, info)

        self.iteration = 0
        self.env_steps = 0
        self.episode_return = np.zeros(env.num_envs)
        self.episode_length = np.zeros(env.num_envs, np.int64)
        self.recent_returns: collections.deque[float] = collections.deque(maxlen=env.num_envs)
        self.recent_lengths: collections.deque[int] = collections.deque(maxlen=env.num_envs)
        self.history: list[dict[str, float | int | None]] = []
        self._logger: RunLogger | None = None
        self._resumed_at: tuple[int, int] | None = None

    # The one critic of an algorithm with a centralised critic (all critics: self.critics.heads).
    @property
    def critic(self) -> Critic:
        return self._central_head().critic

    @property
    def critic_update(self) -> CriticUpdate:
        return self._central_head().update

    @property
    def normalizer(self) -> ValueNormalizer | None:
        return self._central_head().normalizer

    def _central_head(self):
        if len(self.critics.heads) != 1:
            raise AttributeError(f"{self.config.algo.name} has {len(self.critics.heads)} critics, one per agent: see Trainer.critics.heads")
        return self.critics.heads[0]

    # -- public API ------------------------------------------------------------------
    def policy(self) -> JointPolicy:
        """The agents' current policies (a copy of their weights) to act with."""
        return JointPolicy(self.actors)

    def train(self, iterations: int | None = None) -> list[dict]:
        """Run `iterations` iterations (default: until run.num_env_steps); return their metric rows."""
        count = self.total_iterations - self.iteration if iterations is None else iterations
        rows = []
        bar = ProgressBar(self.total_iterations * self.batch_size, self.env_steps) if self.config.run.progress else None
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
        torch.set_num_threads(cfg.run.update_torch_threads)
        try:
            update = self._update()
        finally:
            torch.set_num_threads(cfg.run.torch_threads)
        updated = time.perf_counter()
        self.iteration += 1
        self.env_steps += self.batch_size
        last = self.iteration == self.total_iterations
        eval_return = None
        if self.eval_env is not None and (self.iteration % cfg.run.eval_interval == 0 or last):
            eval_return = self.evaluate()
        evaluated = time.perf_counter()
        row: dict[str, float | int | None] = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "train_return": _mean_or_none(self.recent_returns),
            "train_episode_length": _mean_or_none(self.recent_lengths),
            "eval_return": eval_return,
            **update,
        }
        timing = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "collect_seconds": collected - start,
            "update_seconds": updated - collected,
            "eval_seconds": evaluated - updated,
            "collect_steps_per_second": self.batch_size / (collected - start),
            "env_steps_per_second": self.batch_size / (evaluated - start),
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

    # -- collection ------------------------------------------------------------------
    @torch.no_grad()
    def _collect(self) -> None:
        s, env = self.storage, self.env
        for t in range(s.T):
            masks = None if s.masks is None else [m[t] for m in s.masks]
            actions = self.joint_policy.act([o[t] for o in s.obs], generator=self.sample_generator, action_masks=masks)
            for buffer, a in zip(s.actions, actions):
                buffer[t].copy_(a)
            obs, state, reward, terminated, truncated, info = env.step(env_actions(env, actions, self.config.env.clip_actions))
            s.write_step(t, reward, terminated, truncated, info)
            s.write_observation(t + 1, obs, state, info)
            self._track_episodes(reward, terminated | truncated)

    def _track_episodes(self, reward: np.ndarray, done: np.ndarray) -> None:
        self.episode_return += reward
        self.episode_length += 1
        for j in np.flatnonzero(done):
            self.recent_returns.append(float(self.episode_return[j]))
            self.recent_lengths.append(int(self.episode_length[j]))
        self.episode_return[done] = 0.0
        self.episode_length[done] = 0

    # -- update ----------------------------------------------------------------------
    def _update(self) -> dict[str, float]:
        cfg, s = self.config, self.storage
        if cfg.algo.lr_decay == "linear":
            fraction = 1.0 - self.iteration / self.total_iterations
            for updater in {id(u): u for u in self.updaters}.values():
                updater.scale_learning_rate(fraction)
            self.critics.scale_learning_rate(fraction)
        estimate = self.critics.estimate(s)
        T, N = s.T, s.N
        n = self.env.num_agents
        order = list(range(n)) if cfg.algo.fixed_order else [int(i) for i in self.permutation_rng.permutation(n)]
        data = [
            AgentData(
                s.obs[i][:T].reshape(T * N, -1),
                s.actions[i].reshape(T * N, *s.actions[i].shape[2:]),
                None if s.masks is None else s.masks[i][:T].reshape(T * N, -1),
            )
            for i in range(n)
        ]
        result = self.update_scheme(self.actors, self.updaters, data, estimate.advantages, order, self.minibatch_generator)
        self.joint_policy.refresh()
        critic = self.critics.update(estimate, self.minibatch_generator)
        # Only now may row 0 take the last observation: the update above still needs row 0's own.
        s.carry_over()

        metrics = {f"actor/{key}": float(np.mean([m[key] for m in result.metrics])) for key in result.metrics[0]}
        metrics.update({f"critic/{key}": value for key, value in critic.items()})
        # The last agent's factor is the product of all the others' ratios: the widest spread
        # (1 under the simultaneous scheme, where every factor is 1).
        last = result.factors[order[-1]]
        metrics.update({
            "factor/last_mean": last.mean().item(),
            "factor/last_std": last.std(unbiased=False).item(),
            "factor/last_min": last.min().item(),
            "factor/last_max": last.max().item(),
            "factor/joint_ratio_mean": result.final_factor.mean().item(),
        })
        return metrics

    # -- evaluation ------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, episodes: int | None = None) -> float:
        """Mean return of deterministic episodes (default run.eval_episodes) on the separate
        evaluation env, every env playing whole episodes in rounds (`hapo.evaluation.evaluate_policy`)."""
        if self.eval_env is None:
            raise ValueError("evaluation is off (run.eval_interval = 0): no evaluation env")
        episodes = self.config.run.eval_episodes if episodes is None else episodes
        played = evaluate_policy(self.joint_policy, self.eval_env, episodes, clip_actions=self.config.env.clip_actions)
        return float(np.mean(played.returns))

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
            assert self.run_dir is not None
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_lib.save(self.config, self.run_dir / CONFIG_FILE)
            self._logger = RunLogger(self.run_dir, self.config.run.tensorboard, self._resumed_at)
            self._resumed_at = None
        self._logger.write(row, timing)

    def save_checkpoint(self) -> pathlib.Path:
        """Write everything needed to continue exactly to run_dir/checkpoint.pt (atomically)."""
        assert self.run_dir is not None
        to_plain = checkpoint_lib.to_plain
        env = self.env
        checkpoint = {
            "format": checkpoint_lib.FORMAT,
            "hapo_version": hapo.__version__,
            "config": self.config.to_dict(),
            # What load_policy needs to rebuild the actors without making an env.
            "spaces": {
                "obs_sizes": [int(n) for n in env.obs_sizes],
                "action_sizes": [int(n) for n in env.action_sizes],
                "action_kind": env.action_kind,
            },
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "actors": [a.state_dict() for a in self.distinct_actors],
            "updaters": [self.updaters[self.actors.index(a)].state_dict() for a in self.distinct_actors],
            **self.critics.state_dict(),  # "critic", "critic_update", "normalizer"
            "rng": {
                "python": checkpoint_lib.python_rng_state(),
                "numpy": checkpoint_lib.numpy_rng_state(),
                "torch": torch.get_rng_state(),
                "sample": self.sample_generator.get_state(),
                "minibatch": self.minibatch_generator.get_state(),
                "permutation": to_plain(self.permutation_rng.bit_generator.state, "permutation rng"),
            },
            "env": to_plain(env.snapshot(), "env snapshot"),
            "eval_env": None if self.eval_env is None else to_plain(self.eval_env.snapshot(), "eval env snapshot"),
            "current": self.storage.current(),
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
        env = self.env
        spaces = {"obs_sizes": list(env.obs_sizes), "action_sizes": list(env.action_sizes), "action_kind": env.action_kind}
        if checkpoint["spaces"] != spaces:
            raise CheckpointError(f"checkpoint {path} is of agents {checkpoint['spaces']}, this run's env has {spaces}")
        from_plain = checkpoint_lib.from_plain
        with checkpoint_lib.restoring(path, "the networks and optimisers"):
            _load_actors(self.distinct_actors, checkpoint["actors"])
            for actor, state in zip(self.distinct_actors, checkpoint["updaters"], strict=True):
                self.updaters[self.actors.index(actor)].load_state_dict(state)
            self.critics.load_state_dict(checkpoint)
        with checkpoint_lib.restoring(path, "the random number generators"):
            rng = checkpoint["rng"]
            checkpoint_lib.set_python_rng_state(rng["python"])
            checkpoint_lib.set_numpy_rng_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])
            self.sample_generator.set_state(rng["sample"])
            self.minibatch_generator.set_state(rng["minibatch"])
            self.permutation_rng.bit_generator.state = from_plain(rng["permutation"])
        with checkpoint_lib.restoring(path, "the environments' snapshot"):
            env.restore(from_plain(checkpoint["env"]))
            if self.eval_env is not None:
                self.eval_env.restore(from_plain(checkpoint["eval_env"]))
            self.storage.load_current(checkpoint["current"])
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

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, num_env_steps: int | None = None, progress: bool | None = None) -> Trainer:
        """A trainer continuing the run in `run_dir` from its checkpoint (optionally to a new length).

        The checkpoint is read and checked against the run's config.yaml before anything is
        built; a bad one raises `CheckpointError` and leaves the run folder untouched.
        """
        run_dir = pathlib.Path(run_dir)
        config, checkpoint = _read_run(run_dir)
        trainer = cls(config, run_dir)
        trainer._restore(checkpoint, run_dir / CHECKPOINT_FILE)
        changes = [] if num_env_steps is None else [f"run.num_env_steps={num_env_steps}"]
        changes += [] if progress is None else [f"run.progress={progress}"]
        trainer.config = config.with_overrides(changes)
        trainer.total_iterations = trainer.config.run.num_env_steps // trainer.batch_size
        return trainer


def load_policy(run_dir: str | os.PathLike) -> tuple[Config, JointPolicy]:
    """The config and the agents' policies at the checkpoint of the run in `run_dir`, to act with.

    Reads only config.yaml and checkpoint.pt (with `weights_only=True`): no environment is
    built, since the checkpoint records the agents' observation and action sizes. Raises
    FileNotFoundError for a folder without them, CheckpointError (a ValueError) for a bad
    or mismatched checkpoint.
    """
    run_dir = pathlib.Path(run_dir)
    config, checkpoint = _read_run(run_dir)
    path = run_dir / CHECKPOINT_FILE
    spaces = checkpoint["spaces"]
    with checkpoint_lib.restoring(path, "the actors"):
        actors = build_actors(spaces["obs_sizes"], spaces["action_sizes"], spaces["action_kind"], config)
        _load_actors(_distinct(actors), checkpoint["actors"])
    return config, JointPolicy(actors)


def build_actors(obs_sizes, action_sizes, action_kind: str, config: Config) -> list[Actor]:
    """One actor per agent; with algo.share_param, agents of equal sizes get the same actor object."""
    shared: dict[tuple[int, int], Actor] = {}
    actors = []
    for obs_size, action_size in zip(obs_sizes, action_sizes, strict=True):
        key = (obs_size, action_size)
        if config.algo.share_param and key in shared:
            actors.append(shared[key])
            continue
        actor = Actor(obs_size, action_size, action_kind, config.model)
        shared.setdefault(key, actor)
        actors.append(actor)
    return actors


def _distinct(actors: list[Actor]) -> list[Actor]:
    """The actor objects in order of first appearance: the order of a checkpoint's "actors"."""
    return list({id(a): a for a in actors}.values())


def _load_actors(actors: list[Actor], states: list[dict]) -> None:
    for actor, state in zip(actors, states, strict=True):
        actor.load_state_dict(state)


def _read_run(run_dir: pathlib.Path) -> tuple[Config, dict]:
    """The config.yaml and the checked checkpoint of a run folder."""
    for name in (CONFIG_FILE, CHECKPOINT_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"run folder {run_dir} has no {name}: not a run, or stopped before its first checkpoint")
    config = config_lib.load(str(run_dir / CONFIG_FILE))
    checkpoint = checkpoint_lib.read(run_dir / CHECKPOINT_FILE)
    _check_checkpoint_config(checkpoint, config, run_dir / CHECKPOINT_FILE)
    return config, checkpoint


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
    """The default run folder name: scenario-agent_conf-algo-seed."""
    return f"{config.env.scenario}-{config.env.agent_conf}-{config.algo.name}-seed{config.run.seed}"

