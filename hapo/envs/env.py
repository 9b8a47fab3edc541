"""Batched multi-agent MuJoCo environments (the protocol of docs/env_api.md)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import mujoco
import numpy as np

from hapo import _core
from hapo.envs.layouts import OBS_MODES, build_layout
from hapo.envs.partitions import SCENARIOS, Scenario, get_scenario
from hapo.envs import smax

log = logging.getLogger("hapo.envs")
T = TypeVar("T")


def model_path(scenario: str) -> str:
    """The model file of a scenario with a fixed model, in the installed package that ships it."""
    spec = SCENARIOS[scenario]
    package, folder = spec.model_assets
    # find_spec locates the package without importing it (Gymnasium-Robotics registers
    # hundreds of envs on import).
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(f"{scenario} runs on {spec.model_file} of the package {package}, which is not installed")
    return str(Path(found.submodule_search_locations[0]) / folder / spec.model_file)


def quietly(compile_model: Callable[[], T]) -> T:
    """compile_model() with the MuJoCo warnings it raises logged at DEBUG to "hapo.envs".

    MuJoCo would print them and append them to MUJOCO_LOG.TXT in the current directory;
    those of Gymnasium's model files (deprecated compiler attributes) are not the user's
    to fix.
    """
    result, warnings = _core.capture_mujoco_warnings(compile_model)
    for text in warnings:
        log.debug("MuJoCo: %s", text)
    return result


def load_model(scenario: str, spec: Scenario) -> tuple[str, str, mujoco.MjModel]:
    """(path, generated MJCF text or "", model) of a scenario's data."""
    if spec.model_xml is not None:
        xml = spec.model_xml
        return f"<generated {scenario}>", xml, quietly(lambda: mujoco.MjModel.from_xml_string(xml))
    path = model_path(scenario)
    return path, "", quietly(lambda: mujoco.MjModel.from_xml_path(path))


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _check_int(value: object, name: str, minimum: int, bits: int = 31) -> int:
    """`value` as an int in [minimum, 2**bits) (the C++ type it becomes), or a TypeError/ValueError naming it."""
    value = _as_int(value, name)
    if not minimum <= value < 2**bits:
        raise ValueError(f"{name} must be in [{minimum}, 2**{bits}), got {value}")
    return value


def make(
    scenario: str,
    partition: str | None,
    *,
    num_envs: int = 1,
    num_threads: int = 1,
    seed: int = 0,
    agent_obsk: int | None = 1,
    max_episode_steps: int | None = None,
    obs_mode: str = "local",
) -> BatchedMujocoEnv:
    """A batch of `num_envs` copies of a Multi-Agent MuJoCo scenario.

    Args:
      scenario: a Gymnasium v5 task ("HalfCheetah", "Ant", "Hopper", "Walker2d", "Swimmer",
        "Reacher", "Pusher", "Humanoid", "HumanoidStandup", "InvertedPendulum",
        "InvertedDoublePendulum") or one of `mamujoco_v1`'s own ("CoupledHalfCheetah",
        "ManySegmentSwimmer", "ManySegmentAnt"); see list_tasks().
      partition: agent factorisation of `mamujoco_v1` or the paper, e.g. "6x1"; None (or
        agent_obsk None) gives one agent that acts on everything and observes the global
        state. The many-segment scenarios take any "AxS" (A agents of S segments; the
        model is generated for A * S segments) and need one.
      num_envs: environments stepped together.
      num_threads: threads stepping them (the caller's included); results do not depend on it.
      seed: environment k draws its reset noise from stream k of this seed.
      agent_obsk: graph distance up to which an agent observes other joints (obs_mode "local").
      obs_mode: "local" (MaMuJoCo's partial view of joints up to agent_obsk hops) or
        "global" (every agent observes the global state, i.e. the single-agent task's
        observation, then its one-hot id: the setting of the paper's experiments).
      max_episode_steps: the time limit; None: Gymnasium's (1000; Reacher 50, Pusher 100).

    `make("SMAX", "3s5z", num_envs=N, seed=s)` gives JaxMARL's SMAC-style battles instead
    (`hapo.envs.smax`; partition = the map; num_threads, agent_obsk and obs_mode do not apply).
    """
    if scenario == smax.SCENARIO:
        if max_episode_steps is not None:
            raise ValueError("SMAX maps have their own time limit (env option max_steps); max_episode_steps must be None")
        return smax.make(partition, num_envs=num_envs, seed=seed)
    spec = get_scenario(scenario, partition)
    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode must be one of {', '.join(OBS_MODES)}, got {obs_mode!r}")
    if max_episode_steps is None:
        max_episode_steps = spec.max_episode_steps
    if agent_obsk is not None:
        _check_int(agent_obsk, "agent_obsk", 0)
    _check_int(num_envs, "num_envs", 1)
    _check_int(num_threads, "num_threads", 1)
    _check_int(max_episode_steps, "max_episode_steps", 1)
    seed = _check_int(seed, "seed", 0, bits=64)
    path, xml, model = load_model(scenario, spec)
    layout = build_layout(model, spec, partition, agent_obsk, obs_mode)
    core = quietly(
        lambda: _core.BatchedEnv(
            path,
            xml,
            spec.task,
            num_envs,
            num_threads,
            seed,
            max_episode_steps,
            layout.agent_actuators,
            layout.agent_obs,
            layout.state,
        )
    )
    single_agent = partition is None or agent_obsk is None
    return BatchedMujocoEnv(
        core, scenario, None if single_agent else partition, None if single_agent or obs_mode == "global" else agent_obsk,
        "global" if single_agent else obs_mode,
    )


class BatchedMujocoEnv:
    """N copies of a multi-agent MuJoCo scenario stepped in C++ on a thread pool.

    Made by `make()`. Outputs are views of buffers the env owns and overwrites on the
    next call; copy what you keep. Not for concurrent use: a call while another thread's
    call runs raises RuntimeError.
    """

    action_kind = "continuous"

    def __init__(self, core: _core.BatchedEnv, scenario: str, partition: str | None, agent_obsk: int | None, obs_mode: str):
        self._core = core
        self.scenario = scenario
        self.partition = partition
        self.agent_obsk = agent_obsk
        self.obs_mode = obs_mode
        # The paper's setting: agent i observes the state followed by its one-hot id (the
        # off-policy replay buffer then stores the states only).
        self.obs_is_state_plus_id = obs_mode == "global" and partition is not None
        self.num_envs: int = core.num_envs
        self.num_threads: int = core.num_threads
        self.num_agents: int = core.num_agents
        self.agents = [f"agent_{i}" for i in range(self.num_agents)]
        self.obs_sizes = tuple(core.obs_size(i) for i in range(self.num_agents))
        self.action_sizes = tuple(core.action_size(i) for i in range(self.num_agents))
        self.state_size: int = core.state_size
        bounds = [
            np.array([core.ctrl_range(i, j) for j in range(n)], dtype=np.float32).reshape(n, 2)
            for i, n in enumerate(self.action_sizes)
        ]
        self.action_low = [b[:, 0].copy() for b in bounds]
        self.action_high = [b[:, 1].copy() for b in bounds]
        self.max_episode_steps: int = core.max_episode_steps
        self.dt: float = core.dt
        self.frame_skip: int = core.frame_skip
        self.info_names: tuple[str, ...] = tuple(core.info_names)
        buffers = core.buffers()
        self._obs = buffers["obs"]
        self._state = buffers["state"]
        self._reward = buffers["reward"]
        self._terminated = buffers["terminated"]
        self._truncated = buffers["truncated"]
        self._info = {
            "final_obs": buffers["final_obs"],
            "final_state": buffers["final_state"],
            **{name: buffers["info"][:, i] for i, name in enumerate(self.info_names)},
        }

    @property
    def closed(self) -> bool:
        return self._core.closed

    def _check_open(self, call: str) -> None:
        if self._core.closed:
            raise RuntimeError(f"{call}() on a closed env")

    def reset(self, seed: int | None = None) -> tuple[list[np.ndarray], np.ndarray, dict]:
        """Start a new episode everywhere; a seed re-seeds every env first (as make() does).

        Returns obs (per agent [N, obs_sizes[i]]), state [N, state_size], info {}.
        """
        self._check_open("reset")
        self._core.reset(None if seed is None else _check_int(seed, "seed", 0, bits=64))
        self._log_warnings()
        return self._obs, self._state, {}

    def step(self, actions: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One step of every env; ended episodes are reset (see docs/env_api.md).

        actions: per agent a float32 array [N, action_sizes[i]], finite. Values outside
        [action_low, action_high] are used as given by the control cost and clamped by
        MuJoCo (the actuators' ctrlrange), as in Gymnasium.
        Returns obs, state, reward [N], terminated [N], truncated [N], info with
        "final_obs", "final_state" and the task's reward components (each [N]).
        """
        self._check_open("step")
        if not isinstance(actions, (list, tuple)):
            raise TypeError(f"actions must be a list of {self.num_agents} arrays (one per agent), got {type(actions).__name__}")
        self._core.step(actions)
        self._log_warnings()
        return self._obs, self._state, self._reward, self._terminated, self._truncated, self._info

    def _log_warnings(self) -> None:
        # MuJoCo's warnings (an unstable simulation, after which MuJoCo resets that env's physics,
        # as under Gymnasium) go to logging instead of stdout and ./MUJOCO_LOG.TXT.
        for message in self._core.take_warnings():
            log.warning("MuJoCo warning in %s %s, %s", self.scenario, self.partition or "", message)

    def _env_index(self, k: object) -> int:
        k = _as_int(k, "env index")
        if not 0 <= k < self.num_envs:
            raise IndexError(f"env index must be in [0, {self.num_envs}), got {k}")
        return k

    def get_qpos(self, k: int) -> np.ndarray:
        """A copy of env k's qpos (float64)."""
        self._check_open("get_qpos")
        return self._core.qpos(self._env_index(k))

    def get_qvel(self, k: int) -> np.ndarray:
        """A copy of env k's qvel (float64)."""
        self._check_open("get_qvel")
        return self._core.qvel(self._env_index(k))

    def set_state(self, k: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Gymnasium's set_state on env k: qpos, qvel (finite), then mj_forward; its obs and
        state buffers are recomputed. The episode's step count is kept."""
        self._check_open("set_state")
        self._core.set_state(self._env_index(k), qpos, qvel)
        self._log_warnings()

    def snapshot(self) -> dict[str, np.ndarray | str]:
        """Everything that determines future steps (physics, step counts, RNG states, and
        the step's position memory), plus the current obs and state: copies; "model" names
        the task, its model file and sizes, which restore() checks."""
        self._check_open("snapshot")
        return self._core.snapshot()

    def restore(self, snapshot: dict[str, np.ndarray | str]) -> tuple[list[np.ndarray], np.ndarray]:
        """Return to a snapshot of this env; returns the obs and state it held. A snapshot of
        another task, model or sizes raises ValueError naming both."""
        self._check_open("restore")
        self._core.restore(snapshot)
        return self._obs, self._state

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> BatchedMujocoEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"BatchedMujocoEnv({self.scenario!r}, partition={self.partition!r}, obs_mode={self.obs_mode!r}, agent_obsk={self.agent_obsk}, "
            f"num_envs={self.num_envs}, num_threads={self.num_threads}, agents={self.num_agents}, "
            f"obs_sizes={self.obs_sizes}, action_sizes={self.action_sizes}, state_size={self.state_size}"
            f"{', closed' if self.closed else ''})"
        )
