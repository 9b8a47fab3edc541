from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

def mujoco_version() -> str: ...
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]: ...

ENV_FIELDS: tuple[str, ...]
ENV_OPS: tuple[str, ...]

def env_task_names() -> list[str]: ...
def capture_mujoco_warnings(fn: Callable[[], T]) -> tuple[T, list[str]]: ...

class BatchedEnv:
    def __init__(
        self,
        model_path: str,
        model_xml: str,
        task: str,
        num_envs: int,
        num_threads: int,
        seed: int,
        max_episode_steps: int,
        agent_actuators: list[list[int]],
        agent_obs: list[tuple[np.ndarray, np.ndarray]],
        state: tuple[np.ndarray, np.ndarray],
    ) -> None: ...
    def buffers(self) -> dict: ...
    def reset(self, seed: int | None = None) -> None: ...
    def step(self, actions: list[np.ndarray]) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def qpos(self, k: int) -> np.ndarray: ...
    def qvel(self, k: int) -> np.ndarray: ...
    def set_state(self, k: int, qpos: np.ndarray, qvel: np.ndarray) -> None: ...
    def take_warnings(self) -> list[str]: ...
    def snapshot(self) -> dict[str, np.ndarray | str]: ...
    def restore(self, snapshot: dict[str, np.ndarray | str]) -> None: ...
    num_envs: int
    num_threads: int
    num_agents: int
    state_size: int
    frame_skip: int
    dt: float
    max_episode_steps: int
    info_names: list[str]
    def obs_size(self, agent: int) -> int: ...
    def action_size(self, agent: int) -> int: ...
    def ctrl_range(self, agent: int, j: int) -> tuple[float, float]: ...
class ConjugateGradientResult:
    @property
    def x(self) -> torch.Tensor: ...
    @property
    def iterations(self) -> int: ...
    @property
    def residual_norm(self) -> float: ...
    @property
    def curvature(self) -> float: ...

def fisher_vector_product(
    kl: torch.Tensor,
    params: Iterable[torch.Tensor],
    v: torch.Tensor,
    damping: float,
) -> torch.Tensor: ...
def conjugate_gradient(
    kl: torch.Tensor,
    params: Iterable[torch.Tensor],
    g: torch.Tensor,
    damping: float = 0.1,
    max_iterations: int = 10,
    tolerance: float = 1e-5,
) -> ConjugateGradientResult: ...
class MlpFisher:
    def __init__(
        self,
        obs: torch.Tensor,
        weights: Sequence[torch.Tensor],
        biases: Sequence[torch.Tensor],
        *,
        distribution: str,
        input_norm: tuple[torch.Tensor, torch.Tensor] | None = None,
        hidden_norms: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
        activation: str = "relu",
        norm_eps: float = 1e-5,
        std_param: torch.Tensor | None = None,
        std_kind: str = "exp",
        std_scale: float = 1.0,
        action_mask: torch.Tensor | None = None,
        damping: float = 0.1,
        row_weights: torch.Tensor | None = None,
    ) -> None: ...
    @property
    def size(self) -> int: ...
    def __call__(self, v: torch.Tensor) -> torch.Tensor: ...
    def solve(self, g: torch.Tensor, max_iterations: int = 10, tolerance: float = 1e-5) -> ConjugateGradientResult: ...
