"""The off-policy training loop (MADDPG, MATD3, HADDPG, HATD3): deterministic actors act with
Gaussian exploration noise, every transition goes to a replay buffer, and the updates learn from
batches sampled from it.

An iteration is `algo.train_interval` steps of all `env.num_envs` environments (num_envs *
train_interval env steps: HARL trains every train_interval steps of its n_rollout_threads envs),
then round(algo.update_per_train * algo.train_interval) updates. An update samples
`algo.batch_size` transitions, takes one critic step on their n-step targets and, when due (every
update; with twin critics every `algo.policy_freq`-th), the actors' steps by the algorithm's scheme
and the soft (Polyak) update of every target network. The first `algo.warmup_steps` env steps act
uniformly at random in the action box, and no update happens until they are collected and the
buffer holds a batch.

`hapo.train.Trainer(config)` makes an `OffPolicyTrainer` for these algorithms; the skeleton it
extends (environments, evaluation, logging, checkpoints) is `hapo.train.Trainer`.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np
import torch

from hapo import checkpoint as checkpoint_lib
from hapo.algos import ALGORITHMS, OFF_POLICY_SCHEMES, QCritic
from hapo.algos.base import Means
from hapo.config import Config, ConfigError
from hapo.models import DeterministicActor, JointPolicy
from hapo.replay import ReplayBuffer, ReplaySample
from hapo.rollout import check_env_output
from hapo.train import Trainer, load_actor_states

log = logging.getLogger(__name__)

# The columns of an iteration's update (None where there was no update, e.g. during the warm-up).
CRITIC_METRICS = ("q_loss", "q_mean", "target_mean", "grad_norm")
ACTOR_METRICS = ("policy_loss", "grad_norm")


class OffPolicyTrainer(Trainer):
    """Off-policy training of one deterministic actor per agent and a centralised Q-critic (or twin ones).

    The algorithm's entry in `hapo.algos.ALGORITHMS` gives the scheme of the actors' updates
    (sequential: each against the new actions of the agents updated before it; simultaneous:
    each against the buffer's actions of the others) and the critic kind (one Q, or TD3's twins).
    Only continuous actions; no parameter sharing.
    """

    def __init__(self, config: Config, run_dir: str | os.PathLike | None = None):
        super().__init__(config, run_dir)
        cfg, env = self.config, self.env
        algo = cfg.algo
        if env.action_kind != "continuous":
            raise ConfigError(
                f"{algo.name} acts with deterministic actors, which need continuous actions; {cfg.env.scenario} has discrete "
                "ones: use an on-policy algorithm (happo, hatrpo, haa2c, mappo, ippo)"
            )
        if algo.share_param:
            raise ConfigError(f"algo.share_param is not supported by {algo.name}: the off-policy algorithms give every agent its own actor")
        self.updates_per_iteration = round(algo.update_per_train * algo.train_interval)
        if self.updates_per_iteration < 1:
            raise ConfigError(f"algo.update_per_train * algo.train_interval = {algo.update_per_train * algo.train_interval:g} rounds to 0 updates per iteration")
        capacity = algo.buffer_size // env.num_envs
        if capacity < 1 or algo.batch_size > capacity * env.num_envs:
            raise ConfigError(
                f"algo.buffer_size ({algo.buffer_size}) must hold algo.batch_size ({algo.batch_size}) transitions "
                f"in whole steps of the env.num_envs ({env.num_envs}) envs"
            )
        # The paper's setting (every agent observes the state plus its id): the buffer keeps the states only.
        obs_from_state = bool(getattr(env, "obs_is_state_plus_id", False))
        _check_memory(ReplayBuffer.nbytes(env.obs_sizes, env.action_sizes, env.state_size, capacity * env.num_envs, obs_from_state), algo.buffer_size)

        algorithm = ALGORITHMS[algo.name]
        self.actors = [DeterministicActor(o, low, high, cfg.model) for o, low, high in zip(env.obs_sizes, env.action_low, env.action_high, strict=True)]
        self.distinct_actors = self.actors
        self.updaters = [algorithm.actor_update(actor, algo) for actor in self.actors]
        self.update_scheme = OFF_POLICY_SCHEMES[algorithm.scheme]
        self.critic = QCritic(algorithm.critic, env.state_size, env.action_sizes, cfg)
        self.joint_policy = JointPolicy(self.actors)
        self.buffer = ReplayBuffer(env.obs_sizes, env.action_sizes, env.state_size, env.num_envs, capacity, obs_from_state)
        self.critic_updates = 0

        obs, state, info = env.reset()
        check_env_output(env, obs, state, info)
        # What the agents see now (the env's arrays are overwritten by its next call).
        self.obs = [torch.from_numpy(o).clone() for o in obs]
        self.state = torch.from_numpy(state).clone()

    def spaces(self) -> dict:
        """The base sizes and the action boxes, which the deterministic actors scale their outputs to."""
        env = self.env
        return {
            **super().spaces(),
            "action_low": [np.asarray(low, np.float32).tolist() for low in env.action_low],
            "action_high": [np.asarray(high, np.float32).tolist() for high in env.action_high],
        }

    # -- collection ------------------------------------------------------------------
    @torch.no_grad()
    def _collect(self) -> None:
        cfg, env = self.config.algo, self.env
        for step in range(cfg.train_interval):
            if self.env_steps + step * env.num_envs < cfg.warmup_steps:
                actions = [a.offset + a.scale * (2 * torch.rand(env.num_envs, a.action_size, generator=self.sample_generator) - 1) for a in self.actors]
            else:
                actions = self._explore(self.joint_policy.act(self.obs, deterministic=True))
            obs, state, reward, terminated, truncated, info = env.step([a.numpy() for a in actions])
            self.buffer.add(self.obs, self.state, actions, reward, terminated, truncated, info["final_obs"], info["final_state"])
            for current, o in zip(self.obs, obs, strict=True):
                current.copy_(torch.from_numpy(o))
            self.state.copy_(torch.from_numpy(state))
            self._track_episodes(reward, terminated | truncated)

    def _explore(self, actions: list[torch.Tensor]) -> list[torch.Tensor]:
        """The actors' actions plus N(0, (expl_noise * scale)^2) noise, clamped to the action box."""
        noisy = []
        for action, actor in zip(actions, self.actors, strict=True):
            noise = torch.randn(action.shape, generator=self.sample_generator) * (self.config.algo.expl_noise * actor.scale)
            noisy.append((action + noise).clamp(actor.offset - actor.scale, actor.offset + actor.scale))
        return noisy

    # -- update ----------------------------------------------------------------------
    def _update(self) -> dict[str, float | None]:
        algo = self.config.algo
        if algo.lr_decay == "linear":
            fraction = 1.0 - self.iteration / self.total_iterations
            for updater in self.updaters:
                updater.scale_learning_rate(fraction)
            self.critic.scale_learning_rate(fraction)
        collected = self.env_steps + self.steps_per_iteration  # the skeleton counts this iteration's steps after the update
        critic, actors = Means(), Means()
        actor_updates = 0
        if collected >= algo.warmup_steps and self.buffer.transitions >= algo.batch_size:
            for _ in range(self.updates_per_iteration):
                batch = self.buffer.sample(algo.batch_size, algo.n_step, algo.gamma, self.minibatch_generator)
                critic.add(**self._critic_step(batch))
                if self.critic.actors_due(self.critic_updates):
                    actors.add(**self._actor_step(batch))
                    actor_updates += 1
            self.joint_policy.refresh()
        critic_means, actor_means = critic.result(), actors.result()
        return {
            **{f"critic/{key}": critic_means.get(key) for key in CRITIC_METRICS},
            **{f"actor/{key}": actor_means.get(key) for key in ACTOR_METRICS},
            "updates/critic": self.updates_per_iteration if critic_means else 0,
            "updates/actor": actor_updates,
            "replay/transitions": self.buffer.transitions,
        }

    def _critic_step(self, batch: ReplaySample) -> dict[str, float]:
        """One critic step on the batch's n-step targets."""
        next_actions = [
            self.critic.bootstrap_actions(u.target_actions(o), u.actor.offset, u.actor.scale, self.minibatch_generator)
            for u, o in zip(self.updaters, batch.next_obs, strict=True)
        ]
        targets = batch.returns + batch.discount * self.critic.target_value(batch.next_state, next_actions)
        self.critic_updates += 1
        return self.critic.update(batch.state, batch.actions, targets)

    def _actor_step(self, batch: ReplaySample) -> dict[str, float]:
        """The actors' steps by the scheme on the batch, then every target network's soft update."""
        algo = self.config.algo
        n = self.env.num_agents
        order = list(range(n)) if algo.fixed_order else [int(i) for i in self.permutation_rng.permutation(n)]
        value_of_joint = functools.partial(self.critic.value, batch.state)
        per_agent = self.update_scheme(self.updaters, batch.obs, batch.actions, value_of_joint, order)
        for updater in self.updaters:
            updater.soft_update(algo.polyak)
        self.critic.soft_update(algo.polyak)
        return {key: float(np.mean([m[key] for m in per_agent])) for key in ACTOR_METRICS}

    # -- checkpoints -----------------------------------------------------------------
    def _loop_state(self) -> dict:
        return {
            "actors": [a.state_dict() for a in self.actors],
            "updaters": [u.state_dict() for u in self.updaters],  # optimiser and target actor
            "critic": self.critic.networks_state_dict(),
            "critic_update": self.critic.state_dict(),
            "critic_updates": self.critic_updates,
            "current": {"obs": list(self.obs), "state": self.state},
            "replay": self.buffer.state_dict() if self.config.run.checkpoint_buffer else None,
        }

    def _load_loop_state(self, checkpoint: dict, path: str | os.PathLike) -> None:
        with checkpoint_lib.restoring(path, "the networks and optimisers"):
            load_actor_states(self.actors, checkpoint["actors"])
            for updater, state in zip(self.updaters, checkpoint["updaters"], strict=True):
                updater.load_state_dict(state)
            self.critic.load_networks_state_dict(checkpoint["critic"])
            self.critic.load_state_dict(checkpoint["critic_update"])
            self.critic_updates = int(checkpoint["critic_updates"])
        with checkpoint_lib.restoring(path, "the current observations and the replay buffer"):
            current = checkpoint["current"]
            for mine, saved in zip(self.obs, current["obs"], strict=True):
                mine.copy_(saved)
            self.state.copy_(current["state"])
            if checkpoint["replay"] is not None:
                self.buffer.load_state_dict(checkpoint["replay"])
            else:
                log.warning("checkpoint %s holds no replay buffer (run.checkpoint_buffer false): training goes on with an empty one", path)

    @classmethod
    def checkpoint_actors(cls, checkpoint: dict, config: Config) -> list[DeterministicActor]:
        spaces = checkpoint["spaces"]
        boxes = zip(spaces["obs_sizes"], spaces["action_low"], spaces["action_high"], strict=True)
        actors = [DeterministicActor(o, low, high, config.model) for o, low, high in boxes]
        load_actor_states(actors, checkpoint["actors"])
        return actors


def _check_memory(nbytes: int, buffer_size: int) -> None:
    """Refuse a replay buffer larger than the machine's memory before allocating it (the allocation
    itself would succeed, and the run be killed once the buffer fills)."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if nbytes > physical:
        raise ConfigError(
            f"the replay buffer of algo.buffer_size {buffer_size} transitions needs {nbytes / 1e9:.1f} GB, more than this machine's "
            f"{physical / 1e9:.1f} GB of memory: lower algo.buffer_size"
        )
