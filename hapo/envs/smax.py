"""SMAC-style unit battles: JaxMARL's SMAX, as a batched env of hapo's protocol (docs/env_api.md).

`make(map_name, num_envs=N, seed=s)` steps N copies of JaxMARL's `HeuristicEnemySMAX` (the
allies learn; the enemies follow JaxMARL's built-in heuristic) with one call: the step of a
single battle is `jax.vmap`-ed over the copies and `jax.jit`-compiled on the CPU, auto-reset
included. Each call copies the batch's arrays once from JAX's (read-only) buffers into NumPy
buffers this env owns.

- Agents: the allies, `ally_0` ... in JaxMARL's order; discrete actions (move in four
  directions, stop, attack enemy k); `info["action_mask"]` holds JaxMARL's available actions
  (a dead ally can only stop).
- State: JaxMARL's world state. Reward: the mean of the allies' rewards (JaxMARL's shaped
  damage reward plus its win bonus). An episode ends when one side is wiped out (terminated)
  or after `max_steps` steps (truncated: a time limit).
- `info["won"]` [N] bool: where an episode ended at this step with every enemy dead.
- `snapshot`/`restore` capture the battles and the random key exactly.

Needs the optional extra: `pip install "hapo[smax]"` (jax and jaxmarl).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

# The scenario name of `hapo.envs.make` and env.scenario; the map is the partition (env.agent_conf).
SCENARIO = "SMAX"


def _import_jax():
    # jaxmarl prints to stdout while it imports; hapo's stdout may be JSON (hapo-eval --json).
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import jax
            import jax.numpy as jnp
            from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario
            from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO
    except ImportError:
        raise ImportError('SMAX needs jax and jaxmarl: pip install "hapo[smax]"') from None
    return jax, jnp, HeuristicEnemySMAX, map_name_to_scenario, sorted(MAP_NAME_TO_SCENARIO)


def map_names() -> list[str]:
    """The maps JaxMARL's SMAX knows (SMAC's names, e.g. 3s5z, 2s3z, 5m_vs_6m)."""
    return _import_jax()[4]


class SmaxEnv:
    """N copies of one SMAX map, stepped together (see the module doc).

    Args:
      map_name: a map of `map_names()`, e.g. "3s5z".
      num_envs: N.
      seed: the random key's seed.
      options: JaxMARL's SMAX keyword arguments (e.g. see_enemy_actions, walls_cause_death,
        attack_mode, max_steps).
    """

    action_kind = "discrete"
    reports_wins = True  # info["won"]; the trainer logs eval_win_rate
    reports_active = True  # info["active"]: allies alive; dead ones are left out of the losses

    def __init__(self, map_name: str, num_envs: int = 1, seed: int = 0, **options: Any):
        jax, _, heuristic_smax, map_name_to_scenario, maps = _import_jax()
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if map_name not in maps:
            raise ValueError(f"unknown SMAX map {map_name!r}; maps: {', '.join(maps)}")
        self._jax = jax
        env = heuristic_smax(scenario=map_name_to_scenario(map_name), **options)
        self._env, self.map_name = env, map_name
        self.num_envs = num_envs
        self.agents = list(env.agents)
        self.num_agents = len(self.agents)
        self.obs_sizes = tuple(int(env.observation_space(a).shape[0]) for a in self.agents)
        self.action_sizes = tuple(int(env.action_space(a).n) for a in self.agents)
        self.action_low = [np.zeros(1, np.float32) for _ in self.agents]
        self.action_high = [np.asarray([n - 1], np.float32) for n in self.action_sizes]
        self.max_episode_steps = int(env.max_steps)
        self.num_allies = env.num_allies
        self._key = jax.random.PRNGKey(seed)
        self._reset_batch = jax.jit(jax.vmap(self._reset_one))
        self._step_batch = jax.jit(jax.vmap(self._step_one))
        probe = jax.eval_shape(self._reset_one, jax.random.PRNGKey(0))
        self.state_size = int(probe[1].shape[-1])
        self._state: Any = None
        # Outputs: [N, agents, ...] like the jitted step's, so one copy fills each.
        self._obs = np.zeros((num_envs, self.num_agents, self.obs_sizes[0]), np.float32)
        self._final_obs = np.zeros_like(self._obs)
        self._world = np.zeros((num_envs, self.state_size), np.float32)
        self._final_world = np.zeros_like(self._world)
        self._masks = np.zeros((num_envs, self.num_agents, self.action_sizes[0]), bool)
        self._alive = np.zeros((num_envs, self.num_agents), np.float32)

    # -- one battle, in JAX --------------------------------------------------------------
    def _arrays(self, obs, state):
        """Per-agent observations [A, obs], the world state, the available actions [A, n] and
        whether each ally is alive [A]."""
        jnp = self._jax.numpy
        avail = self._env.get_avail_actions(state)
        return (
            jnp.stack([obs[a] for a in self.agents]), obs["world_state"],
            jnp.stack([avail[a] for a in self.agents]).astype(bool), state.state.unit_alive[: self.num_allies],
        )

    def _reset_one(self, key):
        obs, state = self._env.reset(key)
        observations, world, avail, alive = self._arrays(obs, state)
        return observations, world, avail, alive, state

    def _step_one(self, key, state, actions):
        jax, jnp = self._jax, self._jax.numpy
        key, reset_key = jax.random.split(key)
        obs, after, rewards, dones, _ = self._env.step_env(key, state, {a: actions[i] for i, a in enumerate(self.agents)})
        final_obs, final_world, step_avail, step_alive = self._arrays(obs, after)
        alive = after.state.unit_alive
        allies_dead, enemies_dead = ~jnp.any(alive[: self.num_allies]), ~jnp.any(alive[self.num_allies:])
        ended = dones["__all__"]
        terminated = ended & (allies_dead | enemies_dead)
        won = ended & enemies_dead & ~allies_dead
        reset_obs, reset_world, reset_avail, reset_alive, reset_state = self._reset_one(reset_key)
        choose = lambda fresh, kept: jax.tree.map(lambda x, y: jax.lax.select(ended, x, y), fresh, kept)  # noqa: E731
        next_state = choose(reset_state, after)
        reward = jnp.mean(jnp.stack([rewards[a] for a in self.agents]))
        return (
            choose(reset_obs, final_obs), choose(reset_world, final_world), choose(reset_avail, step_avail),
            choose(reset_alive, step_alive), next_state,
            reward, terminated, ended & ~terminated, won, final_obs, final_world,
        )

    # -- protocol -----------------------------------------------------------------------
    def reset(self):
        self._key, key = self._jax.random.split(self._key)
        observations, world, avail, alive, self._state = self._reset_batch(self._jax.random.split(key, self.num_envs))
        return self._outputs(observations, world, avail, alive)

    def step(self, actions):
        actions = self._check_actions(actions)
        self._key, key = self._jax.random.split(self._key)
        result = self._step_batch(self._jax.random.split(key, self.num_envs), self._state, self._jax.numpy.asarray(actions))
        observations, world, avail, alive, self._state, reward, terminated, truncated, won, final_obs, final_world = result
        obs, state, info = self._outputs(observations, world, avail, alive)
        np.copyto(self._final_obs, np.asarray(final_obs))
        np.copyto(self._final_world, np.asarray(final_world))
        info.update(final_obs=[self._final_obs[:, i] for i in range(self.num_agents)], final_state=self._final_world, won=np.array(won))
        return obs, state, np.array(reward), np.array(terminated), np.array(truncated), info

    def _outputs(self, observations, world, avail, alive):
        """Per-agent views of NumPy buffers this env owns (JAX's own arrays are read-only, and the
        trainer hands these to torch), overwritten by the next call."""
        np.copyto(self._obs, np.asarray(observations))
        np.copyto(self._world, np.asarray(world))
        np.copyto(self._masks, np.asarray(avail))
        np.copyto(self._alive, np.asarray(alive))
        info = {"action_mask": [self._masks[:, i] for i in range(self.num_agents)], "active": [self._alive[:, i] for i in range(self.num_agents)]}
        return [self._obs[:, i] for i in range(self.num_agents)], self._world, info

    def _check_actions(self, actions) -> np.ndarray:
        if len(actions) != self.num_agents:
            raise ValueError(f"step takes one action array per agent ({self.num_agents}), got {len(actions)}")
        stacked = []
        for i, a in enumerate(actions):
            a = np.asarray(a)
            if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"actions[{i}] must be integers of shape ({self.num_envs},), got {a.dtype} {a.shape}")
            if a.min() < 0 or a.max() >= self.action_sizes[i]:
                raise ValueError(f"actions[{i}] must be in [0, {self.action_sizes[i]}), got values from {a.min()} to {a.max()}")
            stacked.append(a)
        return np.stack(stacked, axis=1).astype(np.int32)

    def snapshot(self) -> dict:
        """The random key and every battle's state, as NumPy arrays."""
        leaves = self._jax.tree.leaves(self._state)
        return {"key": np.asarray(self._key), **{f"leaf{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}}

    def restore(self, snapshot: dict) -> None:
        """Continue from `snapshot` (of this map and num_envs), after `reset` has run once."""
        jnp = self._jax.numpy
        structure = self._jax.tree.structure(self._state)
        self._state = self._jax.tree.unflatten(structure, [jnp.asarray(snapshot[f"leaf{i}"]) for i in range(structure.num_leaves)])
        self._key = jnp.asarray(snapshot["key"])

    def close(self) -> None:
        self._state = None

    def __enter__(self) -> SmaxEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make(map_name: str, num_envs: int = 1, seed: int = 0, **options: Any) -> SmaxEnv:
    """N copies of an SMAX map as one batched env (see SmaxEnv)."""
    return SmaxEnv(map_name, num_envs, seed, **options)
