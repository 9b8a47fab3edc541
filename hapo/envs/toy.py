"""Tiny cooperative tasks in NumPy, with known optima, for testing and demonstrating the trainer.

They follow the batched protocol of docs/env_api.md exactly (auto-reset, final
observations in `info`, `snapshot`/`restore`), so the trainer treats them like the
MuJoCo environments of `hapo.envs.make`.

Scenarios (`SCENARIOS`):

- ``ToyReach`` (continuous): a point in R^D starts at the origin; a target is drawn
  uniformly in [-1, 1]^D each episode. Agent i moves its own block of coordinates by
  ``STEP * clip(a_i, -1, 1)``; everyone sees the offset point - target. The team reward
  is ``-||point - target||_2`` each step, for ``HORIZON`` steps (then truncation). The
  optimum moves every coordinate straight to the target (`ToyReach.optimal_actions`).
  ``agent_conf`` "NxK" gives N agents of K coordinates each, "K1+K2+..." agents of
  different sizes.
- ``ToySplit`` (discrete, one step): the n-agent game of the paper's Proposition 1.
  Each agent plays 0 or 1; the reward is 1 when the first half of the agents plays one
  action and the second half the other, else 0. ``agent_conf`` is n (even).
- ``ToySplitMasked``: ToySplit with a third action that would pay 2 but is always
  unavailable (``info["action_mask"]``); playing it raises ValueError.
"""

from __future__ import annotations

import re

import numpy as np


class ToyEnv:
    """Shared machinery: auto-reset, final observations, time limit, snapshots.

    Subclasses set the spaces in `__init__` and implement `_reset_where(mask)`,
    `_transition(actions) -> (reward, terminated)` and `_observe() -> (obs, state)`.
    """

    action_kind: str
    max_episode_steps: int

    def __init__(self, num_envs: int, seed: int, obs_sizes, action_sizes, state_size: int):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.num_envs = num_envs
        self.num_agents = len(action_sizes)
        self.agents = [f"agent_{i}" for i in range(self.num_agents)]
        self.obs_sizes = tuple(obs_sizes)
        self.action_sizes = tuple(action_sizes)
        self.state_size = state_size
        self._rng = np.random.default_rng(seed)
        self._elapsed = np.zeros(num_envs, np.int64)

    # -- protocol -------------------------------------------------------------------
    def reset(self):
        self._elapsed[:] = 0
        self._reset_where(np.ones(self.num_envs, bool))
        obs, state = self._observe()
        return obs, state, self._info(obs, state)

    def step(self, actions):
        actions = self._check_actions(actions)
        reward, terminated = self._transition(actions)
        self._elapsed += 1
        truncated = (self._elapsed >= self.max_episode_steps) & ~terminated
        obs, state = self._observe()
        final_obs, final_state = [o.copy() for o in obs], state.copy()
        done = terminated | truncated
        if done.any():
            self._elapsed[done] = 0
            self._reset_where(done)
        obs, state = self._observe()
        info = self._info(obs, state)
        info["final_obs"] = final_obs
        info["final_state"] = final_state
        return obs, state, reward.astype(np.float32), terminated, truncated, info

    def snapshot(self) -> dict:
        snap = {"elapsed": self._elapsed.copy(), "rng": self._rng.bit_generator.state}
        snap.update({f"var_{k}": v.copy() for k, v in self._variables().items()})
        return snap

    def restore(self, snapshot: dict) -> None:
        self._elapsed[:] = snapshot["elapsed"]
        self._rng.bit_generator.state = snapshot["rng"]
        for key, value in self._variables().items():
            value[...] = snapshot[f"var_{key}"]

    def close(self) -> None:
        """Nothing to release; present for the protocol."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- helpers -------------------------------------------------------------------
    def _info(self, obs, state) -> dict:
        return {}

    def _check_actions(self, actions):
        if len(actions) != self.num_agents:
            raise ValueError(f"actions must be a list of {self.num_agents} arrays, got {len(actions)}")
        checked = []
        for i, (a, size) in enumerate(zip(actions, self.action_sizes)):
            a = np.asarray(a)
            if self.action_kind == "discrete":
                expected = (self.num_envs,)
                if a.shape != expected or not np.issubdtype(a.dtype, np.integer):
                    raise ValueError(f"actions[{i}] must be int [{self.num_envs}], got {a.dtype} {a.shape}")
                if ((a < 0) | (a >= size)).any():
                    raise ValueError(f"actions[{i}] must lie in [0, {size}), got {a}")
            else:
                expected = (self.num_envs, size)
                if a.shape != expected:
                    raise ValueError(f"actions[{i}] must have shape {expected}, got {a.shape}")
                if not np.isfinite(a).all():
                    raise ValueError(f"actions[{i}] holds NaN or inf")
            checked.append(a)
        return checked

    def _variables(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _reset_where(self, mask: np.ndarray) -> None:
        raise NotImplementedError

    def _transition(self, actions):
        raise NotImplementedError

    def _observe(self):
        raise NotImplementedError


class ToyReach(ToyEnv):
    """Move a point to a random target; each agent owns a block of coordinates."""

    action_kind = "continuous"
    HORIZON = 10
    STEP = 0.25

    def __init__(self, agent_conf: str, num_envs: int, seed: int):
        sizes = _parse_blocks(agent_conf)
        dim = sum(sizes)
        super().__init__(num_envs, seed, [dim] * len(sizes), sizes, state_size=dim)
        self.max_episode_steps = self.HORIZON
        self.action_low = [np.full(k, -1.0, np.float32) for k in sizes]
        self.action_high = [np.full(k, 1.0, np.float32) for k in sizes]
        self._point = np.zeros((num_envs, dim), np.float32)
        self._target = np.zeros((num_envs, dim), np.float32)

    def _variables(self):
        return {"point": self._point, "target": self._target}

    def _reset_where(self, mask):
        self._point[mask] = 0.0
        self._target[mask] = self._rng.uniform(-1.0, 1.0, (int(mask.sum()), self.state_size))

    def _transition(self, actions):
        joint = np.clip(np.concatenate(actions, axis=1), -1.0, 1.0)
        self._point += self.STEP * joint.astype(np.float32)
        reward = -np.linalg.norm(self._point - self._target, axis=1)
        return reward, np.zeros(self.num_envs, bool)

    def _observe(self):
        offset = self._point - self._target
        return [offset] * self.num_agents, offset

    def optimal_actions(self, obs):
        """The optimal joint action: every coordinate straight to its target, without overshoot."""
        joint = np.clip(-obs[0] / self.STEP, -1.0, 1.0)
        bounds = np.cumsum((0,) + self.action_sizes)
        return [joint[:, lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


class ToySplit(ToyEnv):
    """Proposition 1's game: one half of the agents plays 0 and the other half 1."""

    action_kind = "discrete"

    def __init__(self, agent_conf: str, num_envs: int, seed: int, masked: bool = False):
        if not re.fullmatch(r"[1-9][0-9]*", agent_conf) or int(agent_conf) % 2:
            raise ValueError(f"ToySplit agent_conf must be an even number of agents, got {agent_conf!r}")
        n = int(agent_conf)
        self._masked = masked
        choices = 3 if masked else 2
        super().__init__(num_envs, seed, [1] * n, [choices] * n, state_size=1)
        self.max_episode_steps = 1
        self.action_low = [np.zeros(1, np.float32)] * n
        self.action_high = [np.full(1, choices - 1, np.float32)] * n
        self._ones = np.ones((num_envs, 1), np.float32)
        self._mask = np.ones((num_envs, choices), bool)
        if masked:
            self._mask[:, 2] = False
        first = np.arange(n) < n // 2
        self._patterns = np.stack([first, ~first]).astype(np.int64)

    def _variables(self):
        return {}

    def _reset_where(self, mask):
        """Every episode starts the same: nothing to draw."""

    def _transition(self, actions):
        joint = np.stack(actions, axis=1)
        if self._masked and (joint == 2).any():
            raise ValueError("ToySplitMasked: action 2 is masked out (info['action_mask']) and must not be played")
        hit = (joint[:, None, :] == self._patterns[None]).all(axis=2).any(axis=1)
        reward = hit.astype(np.float32) + 2.0 * (joint == 2).any(axis=1)
        return reward, np.ones(self.num_envs, bool)

    def _observe(self):
        return [self._ones] * self.num_agents, self._ones

    def _info(self, obs, state):
        return {"action_mask": [self._mask] * self.num_agents} if self._masked else {}


def _parse_blocks(agent_conf: str) -> list[int]:
    if m := re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", agent_conf):
        return [int(m[2])] * int(m[1])
    if re.fullmatch(r"[1-9][0-9]*(\+[1-9][0-9]*)*", agent_conf):
        return [int(k) for k in agent_conf.split("+")]
    raise ValueError(f"ToyReach agent_conf must look like '2x1' or '2+1', got {agent_conf!r}")


SCENARIOS = {
    "ToyReach": lambda conf, n, seed: ToyReach(conf, n, seed),
    "ToySplit": lambda conf, n, seed: ToySplit(conf, n, seed),
    "ToySplitMasked": lambda conf, n, seed: ToySplit(conf, n, seed, masked=True),
}


def make(
    scenario: str, agent_conf: str, num_envs: int = 1, num_threads: int = 1, seed: int = 0, agent_obsk: int = 1,
    obs_mode: str = "local",
) -> ToyEnv:
    """Same signature as `hapo.envs.make`; `num_threads` and `agent_obsk` have no effect here."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown toy scenario {scenario!r}; toy scenarios: {', '.join(SCENARIOS)}")
    if obs_mode != "local":
        raise ValueError(f"toy scenarios have each agent's own observation only: obs_mode must be 'local', got {obs_mode!r}")
    return SCENARIOS[scenario](agent_conf, num_envs, seed)
