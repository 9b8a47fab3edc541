"""Preallocated storage of one iteration's rollout (T steps of N environments)."""

from __future__ import annotations

import numpy as np
import torch

from hapo.envs.registry import action_kinds


class RolloutStorage:
    """Time-major tensors, allocated once and overwritten every iteration.

    Row t of `obs`, `state` and `masks` is what the agents saw before step t; row T is
    the observation after the last step, which `carry_over` moves to row 0 for the next
    iteration. `next_state[t]` is the state after step t, or the episode's final state
    where it ended at step t (what the value bootstrap of step t needs); with
    `with_next_obs`, `next_obs[i][t]` is likewise agent i's observation after step t (for
    critics on the agents' own observations), else `next_obs` is None.
    """

    def __init__(self, env, rollout_length: int, with_masks: bool, with_next_obs: bool = False):
        # `active[i][t]` (envs with `reports_active`, e.g. SMAX): whether agent i acts in row t's
        # observation (1) or not (0: a dead unit), else None.
        T, N = rollout_length, env.num_envs
        self.T, self.N = T, N
        self.obs = [torch.zeros(T + 1, N, size) for size in env.obs_sizes]
        self.state = torch.zeros(T + 1, N, env.state_size)
        self.next_state = torch.zeros(T, N, env.state_size)
        self.next_obs = [torch.zeros(T, N, size) for size in env.obs_sizes] if with_next_obs else None
        self.actions = [
            torch.zeros(T, N, size) if kind == "continuous" else torch.zeros(T, N, dtype=torch.int64)
            for size, kind in zip(env.action_sizes, action_kinds(env), strict=True)
        ]
        self.masks = [torch.ones(T + 1, N, size, dtype=torch.bool) for size in env.action_sizes] if with_masks else None
        self.active = [torch.ones(T + 1, N) for _ in env.action_sizes] if getattr(env, "reports_active", False) else None
        self.rewards = torch.zeros(T, N)
        self.terminated = torch.zeros(T, N, dtype=torch.bool)
        self.truncated = torch.zeros(T, N, dtype=torch.bool)

    def write_observation(self, t: int, obs, state, info) -> None:
        """Store what the env returned (its buffers are reused by the next call: copy)."""
        for buffer, o in zip(self.obs, obs):
            buffer[t].copy_(torch.from_numpy(o))
        self.state[t].copy_(torch.from_numpy(state))
        if self.masks is not None:
            for buffer, m in zip(self.masks, info["action_mask"]):
                buffer[t].copy_(torch.from_numpy(m))
        if self.active is not None:
            for buffer, a in zip(self.active, info["active"]):
                buffer[t].copy_(torch.from_numpy(a))

    def write_step(self, t: int, reward, terminated, truncated, info) -> None:
        """Store step t's outcome; `info` of the step gives the final state (and observations)."""
        self.rewards[t].copy_(torch.from_numpy(reward))
        self.terminated[t].copy_(torch.from_numpy(terminated))
        self.truncated[t].copy_(torch.from_numpy(truncated))
        self.next_state[t].copy_(torch.from_numpy(info["final_state"]))
        if self.next_obs is not None:
            for buffer, o in zip(self.next_obs, info["final_obs"]):
                buffer[t].copy_(torch.from_numpy(o))

    def carry_over(self) -> None:
        for buffer in self.obs:
            buffer[0].copy_(buffer[-1])
        self.state[0].copy_(self.state[-1])
        if self.masks is not None:
            for buffer in self.masks:
                buffer[0].copy_(buffer[-1])
        if self.active is not None:
            for buffer in self.active:
                buffer[0].copy_(buffer[-1])

    def current(self) -> dict[str, torch.Tensor | list[torch.Tensor] | None]:
        """Row 0: what the agents see now (saved in checkpoints to resume mid-episode)."""
        return {
            "obs": [o[0].clone() for o in self.obs],
            "state": self.state[0].clone(),
            "masks": None if self.masks is None else [m[0].clone() for m in self.masks],
            "active": None if self.active is None else [a[0].clone() for a in self.active],
        }

    def load_current(self, current: dict) -> None:
        for buffer, o in zip(self.obs, current["obs"]):
            buffer[0].copy_(o)
        self.state[0].copy_(current["state"])
        if self.masks is not None:
            for buffer, m in zip(self.masks, current["masks"]):
                buffer[0].copy_(m)
        if self.active is not None:
            for buffer, a in zip(self.active, current["active"]):
                buffer[0].copy_(a)


def check_env_output(env, obs, state, info) -> None:
    """Check an env's reset() output against its declared spaces, naming what differs."""
    N = env.num_envs
    if len(obs) != env.num_agents:
        raise ValueError(f"env returned {len(obs)} observation arrays for {env.num_agents} agents")
    for i, (o, size) in enumerate(zip(obs, env.obs_sizes)):
        if o.shape != (N, size) or o.dtype != np.float32:
            raise ValueError(f"env obs[{i}] must be float32 {(N, size)}, got {o.dtype} {o.shape}")
    if state.shape != (N, env.state_size) or state.dtype != np.float32:
        raise ValueError(f"env state must be float32 {(N, env.state_size)}, got {state.dtype} {state.shape}")
    if "action_mask" in info:
        if env.action_kind == "continuous":
            raise ValueError("env gave info['action_mask'] but its actions are continuous")
        for i, (m, size) in enumerate(zip(info["action_mask"], env.action_sizes)):
            if m.shape != (N, size) or m.dtype != np.bool_:
                raise ValueError(f"env action_mask[{i}] must be bool {(N, size)}, got {m.dtype} {m.shape}")
