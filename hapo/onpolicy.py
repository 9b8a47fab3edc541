"""The on-policy training loop: collect a batch with all agents, GAE, the agents' updates (by the
algorithm's scheme: sequential with the compound factor, or simultaneous), the critics' update.

`hapo.train.Trainer(config)` makes an `OnPolicyTrainer` for HAPPO, HATRPO, HAA2C, MAPPO and IPPO;
the skeleton it extends (environments, evaluation, logging, checkpoints) is `hapo.train.Trainer`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from hapo import checkpoint as checkpoint_lib
from hapo.algos import ALGORITHMS, ON_POLICY_SCHEMES, ActorUpdate, AgentData, Critics, CriticUpdate
from hapo.config import Config
from hapo.envs import registry
from hapo.evaluation import env_actions
from hapo.models import Actor, Critic, JointPolicy, ValueNormalizer
from hapo.rollout import RolloutStorage, check_env_output
from hapo.train import Trainer, distinct_actors, load_actor_states


class OnPolicyTrainer(Trainer):
    """On-policy training of one actor per agent (or shared actors) and the algorithm's critics.

    The algorithm's entry in `hapo.algos.ALGORITHMS` gives the per-agent update, the scheme
    that combines the agents' updates and the critic kind (one V(state), or V_i(o_i) per agent).
    An iteration collects `algo.rollout_length` steps of every env (`env.num_envs`), then
    updates the actors and critics once on that batch.
    """

    def __init__(self, config: Config, run_dir: str | os.PathLike | None = None):
        super().__init__(config, run_dir)
        cfg, env = self.config, self.env
        self.actors = build_actors(env.obs_sizes, env.action_sizes, registry.action_kinds(env), cfg)
        distinct = distinct_actors(self.actors)
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
                None if s.active is None else s.active[i][:T].reshape(T * N),
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

    # -- checkpoints -----------------------------------------------------------------
    def _loop_state(self) -> dict:
        return {
            "actors": [a.state_dict() for a in self.distinct_actors],
            "updaters": [self.updaters[self.actors.index(a)].state_dict() for a in self.distinct_actors],
            **self.critics.state_dict(),  # "critic", "critic_update", "normalizer"
            "current": self.storage.current(),
        }

    def _load_loop_state(self, checkpoint: dict, path: str | os.PathLike) -> None:
        with checkpoint_lib.restoring(path, "the networks and optimisers"):
            load_actor_states(self.distinct_actors, checkpoint["actors"])
            for actor, state in zip(self.distinct_actors, checkpoint["updaters"], strict=True):
                self.updaters[self.actors.index(actor)].load_state_dict(state)
            self.critics.load_state_dict(checkpoint)
        with checkpoint_lib.restoring(path, "the current observations"):
            self.storage.load_current(checkpoint["current"])

    @classmethod
    def checkpoint_actors(cls, checkpoint: dict, config: Config) -> list[Actor]:
        spaces = checkpoint["spaces"]
        kinds = spaces.get("action_kinds") or [spaces["action_kind"]] * len(spaces["obs_sizes"])
        actors = build_actors(spaces["obs_sizes"], spaces["action_sizes"], kinds, config)
        load_actor_states(distinct_actors(actors), checkpoint["actors"])
        return actors


def build_actors(obs_sizes, action_sizes, action_kinds, config: Config) -> list[Actor]:
    """One actor per agent (action_kinds: per agent); with algo.share_param, agents of equal sizes
    and kind get the same actor object."""
    shared: dict[tuple[int, int, str], Actor] = {}
    actors = []
    for obs_size, action_size, kind in zip(obs_sizes, action_sizes, action_kinds, strict=True):
        key = (obs_size, action_size, kind)
        if config.algo.share_param and key in shared:
            actors.append(shared[key])
            continue
        actor = Actor(obs_size, action_size, kind, config.model)
        shared.setdefault(key, actor)
        actors.append(actor)
    return actors
