from collections.abc import Iterable

import torch

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
