"""Playing whole episodes with a trained team: the trainer's evaluation and `hapo-eval`'s."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from hapo.envs.registry import action_kinds
from hapo.models import JointPolicy


@dataclasses.dataclass(frozen=True)
class Episodes:
    """Episodes in the order of `evaluate_policy`'s rounds, and of the envs within a round."""

    returns: list[float]
    lengths: list[int]
    # Per episode, whether it was won, for envs that report wins (`env.reports_wins`: SMAX); else None.
    wins: list[bool] | None = None

    @property
    def win_rate(self) -> float | None:
        """The fraction of episodes won (an episode cut by max_steps is not won), or None."""
        return None if self.wins is None else float(np.mean(self.wins))

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, std (population), min and max of the returns and of the lengths, and the win rate
        ("win": its mean) for envs that report wins."""
        stats = {name: _stats(values) for name, values in (("return", self.returns), ("length", self.lengths))}
        if self.wins is not None:
            stats["win"] = _stats([float(w) for w in self.wins])
        return stats


def _stats(values: Sequence[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64)
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def env_actions(env, actions: list[torch.Tensor], clip_actions: bool) -> list[np.ndarray]:
    """The policy's actions as the trainer sends them to `env`: continuous ones clamped to
    [action_low, action_high] when `clip_actions` (env.clip_actions), else as sampled."""
    if env.action_kind == "discrete" or not clip_actions:
        return [a.numpy() for a in actions]
    return [
        np.clip(a.numpy(), low, high) if kind == "continuous" else a.numpy()
        for a, low, high, kind in zip(actions, env.action_low, env.action_high, action_kinds(env), strict=True)
    ]


def policy_step(policy: JointPolicy, env, obs, info: dict, *, clip_actions: bool, deterministic: bool, generator: torch.Generator | None):
    """One env.step with the policy's actions for `obs`: (obs, state, reward, terminated, truncated, info)."""
    actions = policy.act(obs, deterministic=deterministic, generator=generator, action_masks=info.get("action_mask"))
    return env.step(env_actions(env, actions, clip_actions))


@torch.no_grad()
def evaluate_policy(
    policy: JointPolicy,
    env,
    episodes: int,
    *,
    clip_actions: bool,
    deterministic: bool = True,
    generator: torch.Generator | None = None,
    max_steps: int | None = None,
) -> Episodes:
    """Play `episodes` episodes, each from a reset, and return them.

    In rounds: `env.reset()`, then steps until each env has ended its first episode or played
    `max_steps` steps (then the episode is cut there). Each env gives one episode a round
    (the last round counts envs 0, 1, ... only), so episodes that end early are not
    favoured over long ones, as taking the first ones to finish would.

    Args:
      policy: acts for all agents (`JointPolicy.act`).
      env: a batched env (hapo.train.make_env).
      clip_actions: the run's env.clip_actions.
      deterministic: the Gaussian mean / most probable choice; else samples from `generator`.
      max_steps: cut episodes after this many steps; None: the env's time limit ends them.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    returns: list[float] = []
    lengths: list[int] = []
    wins: list[bool] | None = [] if getattr(env, "reports_wins", False) else None
    while len(returns) < episodes:
        counted = min(env.num_envs, episodes - len(returns))
        episode_return = np.zeros(env.num_envs)
        length = np.zeros(env.num_envs, np.int64)
        won = np.zeros(env.num_envs, bool)
        playing = np.ones(env.num_envs, bool)
        obs, _, info = env.reset()
        while playing[:counted].any():
            obs, _, reward, terminated, truncated, info = policy_step(
                policy, env, obs, info, clip_actions=clip_actions, deterministic=deterministic, generator=generator
            )
            episode_return[playing] += reward[playing]
            length[playing] += 1
            if wins is not None:
                won |= playing & info["won"]
            playing &= ~(terminated | truncated)
            if max_steps is not None:
                playing &= length < max_steps
        returns += episode_return[:counted].tolist()
        lengths += length[:counted].tolist()
        if wins is not None:
            wins += won[:counted].tolist()
    return Episodes(returns, lengths, wins)
