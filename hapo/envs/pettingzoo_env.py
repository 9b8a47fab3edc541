"""A PettingZoo ParallelEnv view of one environment (the API of `mamujoco_v1`)."""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box
from pettingzoo import ParallelEnv

from hapo.envs.env import BatchedMujocoEnv, make


def pettingzoo_env(
    scenario: str,
    agent_conf: str | None,
    agent_obsk: int | None = 1,
    *,
    seed: int = 0,
    max_episode_steps: int | None = None,
    obs_mode: str = "local",
) -> MujocoParallelEnv:
    """One environment of make(scenario, agent_conf, ...) as a PettingZoo ParallelEnv.

    Arguments as mamujoco_v1.parallel_env's (agent_conf is the partition) and make()'s.
    """
    return MujocoParallelEnv(
        make(
            scenario, agent_conf, num_envs=1, seed=seed, agent_obsk=agent_obsk, max_episode_steps=max_episode_steps,
            obs_mode=obs_mode,
        )
    )


class MujocoParallelEnv(ParallelEnv):
    """PettingZoo's parallel API over a batch of one env.

    Observations are float32 copies. When the episode ends, step() returns its last
    observation, `agents` becomes empty and reset() starts the next one, as in
    mamujoco_v1; state() is then the ended episode's last state.
    """

    metadata = {"name": "hapo_mujoco", "render_modes": [], "is_parallelizable": True}
    render_mode = None

    def __init__(self, env: BatchedMujocoEnv):
        if env.num_envs != 1:
            raise ValueError(f"a PettingZoo view wraps an env of num_envs=1, got {env.num_envs}")
        self.env = env
        self.possible_agents = list(env.agents)
        self.agents: list[str] = []
        self._observation_spaces = {
            a: Box(-np.inf, np.inf, (n,), np.float32) for a, n in zip(env.agents, env.obs_sizes)
        }
        self._action_spaces = {
            a: Box(low, high, dtype=np.float32) for a, low, high in zip(env.agents, env.action_low, env.action_high)
        }
        self.state_space = Box(-np.inf, np.inf, (env.state_size,), np.float32)
        self._state = np.zeros(env.state_size, np.float32)

    def observation_space(self, agent: str) -> Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> Box:
        return self._action_spaces[agent]

    def state(self) -> np.ndarray:
        return self._state.copy()

    def _observations(self, obs: list[np.ndarray], state: np.ndarray) -> dict[str, np.ndarray]:
        self._state = state[0].copy()
        return {a: o[0].copy() for a, o in zip(self.possible_agents, obs)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode; a seed re-seeds the env first. `options` is accepted and unused."""
        obs, state, _ = self.env.reset(seed)
        self.agents = list(self.possible_agents)
        return self._observations(obs, state), {a: {} for a in self.agents}

    def step(self, actions: dict[str, np.ndarray]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() without a running episode: call reset() first")
        missing = [a for a in self.possible_agents if a not in actions]
        unknown = [a for a in actions if a not in self.possible_agents]
        if missing or unknown:
            found = f"lack agents {missing}" if missing else ""
            found += ("; " if missing and unknown else "") + (f"name unknown agents {unknown}" if unknown else "")
            raise KeyError(f"actions {found}; every agent of {self.possible_agents} acts, and only they")
        batch = []
        for agent, size in zip(self.possible_agents, self.env.action_sizes):
            action = np.asarray(actions[agent], dtype=np.float32)
            if action.shape != (size,):
                raise ValueError(f"the action of {agent} must have shape ({size},), got {action.shape}")
            batch.append(action[None])
        _, _, reward, terminated, truncated, info = self.env.step(batch)
        observations = self._observations(info["final_obs"], info["final_state"])
        components = {name: float(info[name][0]) for name in self.env.info_names}
        ended = bool(terminated[0] or truncated[0])
        agents = self.possible_agents
        out = (
            observations,
            {a: float(reward[0]) for a in agents},
            {a: bool(terminated[0]) for a in agents},
            {a: bool(truncated[0]) for a in agents},
            {a: dict(components) for a in agents},
        )
        if ended:
            self.agents = []
        return out

    def close(self) -> None:
        self.env.close()
