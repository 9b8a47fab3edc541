"""N copies of a PettingZoo `ParallelEnv`, stepped as one batched env (docs/env_api.md).

Data flow: the trainer's per-agent action arrays [N, ...] -> one action dict per copy ->
each copy's `step` (in this process, or in worker processes with `vector="async"`) ->
per-agent observation arrays [N, obs_size], the global state [N, state_size], the team
reward [N] and the done flags [N].

What the copies must be (checked once, at start, by `check_parallel_env`): a fixed team
(`possible_agents`; no agent leaves before the episode ends), per-agent spaces that are a
1-D `Box` or a `Discrete` for actions and a 1-D `Box` for observations. A team may mix
continuous and discrete actions (`action_kind` "mixed", per agent in `action_kinds`; every
agent then gets an action mask, all True for the continuous ones).
The global state is `state()` when the env has one (with a 1-D
`state_space`), else the agents' observations concatenated in `possible_agents` order.
The team reward is the mean of the agents' rewards (for the cooperative tasks, where every
agent gets the team's reward, that reward). An episode ends when every agent is
terminated or truncated; it counts as terminated if every agent terminated, else as
truncated (a time limit). `info[agent]["action_mask"]`, when the env gives one, masks
discrete choices.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np
from gymnasium import spaces

ParallelEnvFactory = Callable[[], Any]


class EnvCheckError(ValueError):
    """A PettingZoo env that hapo cannot train on, with what is wrong."""


def _flat_box(space: Any, what: str) -> int:
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise EnvCheckError(f"{what} must be a 1-D gymnasium.spaces.Box, got {space!r}")
    return int(space.shape[0])


def _action_size(space: Any, agent: str) -> tuple[str, int]:
    if isinstance(space, spaces.Discrete):
        if space.start != 0:
            raise EnvCheckError(f"agent {agent!r}'s Discrete action space must start at 0, got start={space.start}")
        return "discrete", int(space.n)
    if isinstance(space, spaces.Box):
        return "continuous", _flat_box(space, f"agent {agent!r}'s action space")
    raise EnvCheckError(f"agent {agent!r}'s action space must be a gymnasium.spaces.Box or Discrete, got {space!r}")


class Spec:
    """What `check_parallel_env` learned about an env: agents, sizes, kinds, bounds."""

    def __init__(self, env: Any):
        agents = list(getattr(env, "possible_agents", None) or [])
        if not agents:
            raise EnvCheckError(f"{type(env).__name__} has no possible_agents: a PettingZoo ParallelEnv lists its agents in possible_agents")
        self.agents = agents
        self.obs_sizes = tuple(_flat_box(env.observation_space(a), f"agent {a!r}'s observation space") for a in agents)
        kinds, self.action_sizes = zip(*(_action_size(env.action_space(a), a) for a in agents), strict=True)
        self.action_kinds = tuple(kinds)
        self.action_kind = kinds[0] if len(set(kinds)) == 1 else "mixed"
        boxes = [env.action_space(a) for a in agents]
        self.action_low = [np.asarray(b.low, np.float32) if k == "continuous" else np.zeros(1, np.float32) for b, k in zip(boxes, kinds, strict=True)]
        self.action_high = [np.asarray(b.high, np.float32) if k == "continuous" else np.asarray([b.n - 1], np.float32) for b, k in zip(boxes, kinds, strict=True)]
        state_space = getattr(env, "state_space", None)
        self.has_state = callable(getattr(env, "state", None)) and state_space is not None
        self.state_size = _flat_box(state_space, "state_space") if self.has_state else sum(self.obs_sizes)


def check_parallel_env(env: Any, seed: int = 0) -> Spec:
    """The env's spec, after one reset and one step with sampled actions; EnvCheckError says what is wrong."""
    for method in ("reset", "step", "observation_space", "action_space"):
        if not callable(getattr(env, method, None)):
            raise EnvCheckError(f"{type(env).__name__} has no {method}(): hapo steps PettingZoo ParallelEnvs (pettingzoo.ParallelEnv)")
    spec = Spec(env)
    result = env.reset(seed=seed)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], dict)):
        raise EnvCheckError(f"{type(env).__name__}.reset(seed=...) must return (observations, infos) dicts, got {type(result).__name__}")
    _check_observations(result[0], spec, "reset")
    if spec.has_state:
        _check_state(env.state(), spec)
    actions = {a: env.action_space(a).sample() for a in spec.agents}
    result = env.step(actions)
    if not (isinstance(result, tuple) and len(result) == 5):
        raise EnvCheckError(f"{type(env).__name__}.step must return (observations, rewards, terminations, truncations, infos), got {type(result).__name__}")
    obs, rewards, terminations, truncations, _ = result
    for name, values in (("rewards", rewards), ("terminations", terminations), ("truncations", truncations)):
        missing = [a for a in spec.agents if a not in values]
        if missing:
            raise EnvCheckError(f"step's {name} miss agents {missing}: every agent must report until the episode ends")
    if not all(terminations[a] or truncations[a] for a in spec.agents):
        _check_observations(obs, spec, "step")
    return spec


def _check_observations(obs: dict, spec: Spec, where: str) -> None:
    missing = [a for a in spec.agents if a not in obs]
    if missing:
        raise EnvCheckError(f"{where} returned no observation for agents {missing}: agents that leave before the episode ends are not supported")
    for agent, size in zip(spec.agents, spec.obs_sizes, strict=True):
        shape = np.shape(obs[agent])
        if shape != (size,):
            raise EnvCheckError(f"{where}'s observation of {agent!r} has shape {shape}, its observation space says ({size},)")


def _check_state(state: Any, spec: Spec) -> None:
    if np.shape(state) != (spec.state_size,):
        raise EnvCheckError(f"state() has shape {np.shape(state)}, state_space says ({spec.state_size},)")


class _Copies:
    """The copies in this process: reset and step each, in order."""

    def __init__(self, factory: ParallelEnvFactory, count: int):
        self.envs = [factory() for _ in range(count)]

    def call(self, method: str, args: list) -> list:
        """method(copy, *args[k]) for every copy k whose args[k] is not None (else None)."""
        return [None if arg is None else getattr(self, method)(env, *arg) for env, arg in zip(self.envs, args, strict=True)]

    @staticmethod
    def reset(env: Any, seed: int | None) -> tuple:
        obs, infos = env.reset(seed=seed)
        return obs, infos, _state_of(env)

    @staticmethod
    def step(env: Any, actions: dict) -> tuple:
        obs, rewards, terminations, truncations, infos = env.step(actions)
        return obs, rewards, terminations, truncations, infos, _state_of(env)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _state_of(env: Any) -> np.ndarray | None:
    return np.asarray(env.state(), np.float32) if callable(getattr(env, "state", None)) and getattr(env, "state_space", None) is not None else None


def _worker(connection, factory_bytes: bytes, count: int) -> None:
    copies = None
    try:
        copies = _Copies(cloudpickle.loads(factory_bytes), count)
        connection.send(("ok", None))
        while True:
            method, args = connection.recv()
            if method == "close":
                break
            connection.send(("ok", copies.call(method, args)))
    except BaseException:  # noqa: BLE001 - the parent raises it with the worker's traceback
        connection.send(("error", traceback.format_exc()))
    finally:
        if copies is not None:
            copies.close()
        connection.close()


class _Workers:
    """The copies split over worker processes, each stepping its share in order. Workers are
    spawned (not forked: the parent runs torch's threads); the factory travels by cloudpickle,
    so closures (PettingZoo's `parallel_env` functions) work too."""

    def __init__(self, factory: ParallelEnvFactory, count: int, processes: int):
        context = multiprocessing.get_context("spawn")
        factory_bytes = cloudpickle.dumps(factory)
        shares = np.array_split(np.arange(count), processes)
        self.sizes = [len(s) for s in shares if len(s)]
        self.connections, self.processes = [], []
        for size in self.sizes:
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, factory_bytes, size), daemon=True)
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)
        for connection in self.connections:
            self._receive(connection)

    @staticmethod
    def _receive(connection) -> Any:
        status, payload = connection.recv()
        if status == "error":
            raise RuntimeError(f"an env worker process failed:\n{payload}")
        return payload

    def call(self, method: str, args: list) -> list:
        start = 0
        for connection, size in zip(self.connections, self.sizes, strict=True):
            connection.send((method, args[start:start + size]))
            start += size
        return [result for connection in self.connections for result in self._receive(connection)]

    def close(self) -> None:
        for connection in self.connections:
            try:
                connection.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


class ParallelEnvVector:
    """`num_envs` copies of the PettingZoo ParallelEnv that `factory()` makes, as one batched env.

    Args:
      factory: a callable that returns a new ParallelEnv (called once per copy, and once more
        for the check; with `vector="async"` it is sent to the workers by cloudpickle).
      num_envs: N, the copies.
      seed: copy k is reset with seed + k at the first reset; later episodes continue each
        copy's own random stream.
      vector: "sync" steps the copies in this process, one after another; "async" in
        `processes` worker processes (for expensive envs). Results do not depend on it.
      max_episode_steps: the episode length limit the env applies itself (for evaluation
        and video budgets); None reads the env's `max_cycles` attribute, else 1000.
    """

    def __init__(self, factory: ParallelEnvFactory, num_envs: int, seed: int = 0, vector: str = "sync", processes: int = 2, max_episode_steps: int | None = None):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if vector not in ("sync", "async"):
            raise ValueError(f"vector must be 'sync' or 'async', got {vector!r}")
        probe = factory()
        try:
            spec = check_parallel_env(probe, seed)
            limit = max_episode_steps or getattr(probe, "max_cycles", None) or getattr(getattr(probe, "unwrapped", None), "max_cycles", None) or 1000
        finally:
            probe.close()
        self.spec = spec
        self.num_envs, self.seed = num_envs, seed
        self.num_agents = len(spec.agents)
        self.agents = list(spec.agents)
        self.obs_sizes, self.action_sizes, self.state_size = spec.obs_sizes, spec.action_sizes, spec.state_size
        self.action_kind, self.action_kinds = spec.action_kind, spec.action_kinds
        self.action_low, self.action_high = spec.action_low, spec.action_high
        self.max_episode_steps = int(limit)
        self.copies = _Copies(factory, num_envs) if vector == "sync" else _Workers(factory, num_envs, max(1, min(processes, num_envs)))
        self._obs = [np.zeros((num_envs, size), np.float32) for size in self.obs_sizes]
        self._final_obs = [np.zeros((num_envs, size), np.float32) for size in self.obs_sizes]
        self._state = np.zeros((num_envs, self.state_size), np.float32)
        self._final_state = np.zeros((num_envs, self.state_size), np.float32)
        # Masks for teams with discrete agents; a continuous agent's stays all True (unused).
        self._masks = [np.ones((num_envs, n), bool) for n in self.action_sizes] if "discrete" in self.action_kinds else None
        self._episodes = 0

    # -- protocol -------------------------------------------------------------------
    def reset(self):
        results = self.copies.call("reset", [(self.seed + k,) for k in range(self.num_envs)])
        for k, (obs, infos, state) in enumerate(results):
            self._write(k, obs, infos, state, self._obs, self._state)
        return self._obs, self._state, self._info()

    def step(self, actions):
        actions = self._check_actions(actions)
        per_copy = [{agent: self._action(actions[i][k], i) for i, agent in enumerate(self.agents)} for k in range(self.num_envs)]
        results = self.copies.call("step", [(a,) for a in per_copy])
        reward = np.zeros(self.num_envs, np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        ended = []
        for k, (obs, rewards, terminations, truncations, infos, state) in enumerate(results):
            reward[k] = np.mean([float(rewards[a]) for a in self.agents])
            done = [bool(terminations.get(a, False)) or bool(truncations.get(a, False)) for a in self.agents]
            if any(done) and not all(done):
                gone = [a for a, d in zip(self.agents, done, strict=True) if d]
                raise EnvCheckError(f"agents {gone} ended their episode before the others in env copy {k}: agents that leave before the episode ends are not supported")
            self._write(k, obs, infos, state, self._final_obs, self._final_state)
            if all(done):
                terminated[k] = all(bool(terminations.get(a, False)) for a in self.agents)
                truncated[k] = not terminated[k]
                ended.append(k)
            else:
                for current, final in zip(self._obs, self._final_obs, strict=True):
                    current[k] = final[k]
                self._state[k] = self._final_state[k]
        if ended:
            # Without a seed: each copy's next episode continues its own random stream.
            resets = self.copies.call("reset", [(None,) if k in ended else None for k in range(self.num_envs)])
            for k in ended:
                obs, infos, state = resets[k]
                self._write(k, obs, infos, state, self._obs, self._state)
        self._episodes += len(ended)
        info = self._info()
        info["final_obs"], info["final_state"] = self._final_obs, self._final_state
        return self._obs, self._state, reward, terminated, truncated, info

    def close(self) -> None:
        if self.copies is not None:
            self.copies.close()
            self.copies = None

    def __enter__(self) -> ParallelEnvVector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> dict:
        """Python envs cannot be captured in general: a snapshot records the episode count, and
        `restore` starts new episodes (a resumed run does not repeat an uninterrupted one)."""
        return {"kind": "pettingzoo", "episodes": np.asarray(self._episodes, np.int64)}

    def restore(self, snapshot: dict):
        self.seed = self.seed + int(snapshot["episodes"]) + 1
        return self.reset()[:2]

    # -- helpers --------------------------------------------------------------------
    def _write(self, k: int, obs: dict, infos: dict, state, obs_out, state_out) -> None:
        for i, agent in enumerate(self.agents):
            obs_out[i][k] = np.asarray(obs[agent], np.float32)
        state_out[k] = state if self.spec.has_state else np.concatenate([o[k] for o in obs_out])
        if self._masks is not None:
            for i, agent in enumerate(self.agents):
                mask = (infos.get(agent) or {}).get("action_mask") if self.action_kinds[i] == "discrete" else None
                self._masks[i][k] = True if mask is None else np.asarray(mask, bool)

    def _info(self) -> dict:
        return {} if self._masks is None else {"action_mask": self._masks}

    def _action(self, value: np.ndarray, agent: int):
        return int(value) if self.action_kinds[agent] == "discrete" else np.asarray(value, np.float32)

    def _check_actions(self, actions) -> list[np.ndarray]:
        if len(actions) != self.num_agents:
            raise ValueError(f"step takes one action array per agent ({self.num_agents}), got {len(actions)}")
        checked = []
        for i, a in enumerate(actions):
            a = np.asarray(a)
            discrete = self.action_kinds[i] == "discrete"
            expected = (self.num_envs,) if discrete else (self.num_envs, self.action_sizes[i])
            if a.shape != expected:
                raise ValueError(f"actions[{i}] must have shape {expected}, got {a.shape}")
            if not discrete and not np.all(np.isfinite(a)):
                raise ValueError(f"actions[{i}] holds NaN or inf")
            checked.append(a)
        return checked
