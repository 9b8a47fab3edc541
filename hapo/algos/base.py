"""The interface shared by the per-agent updates (HAPPO, HATRPO, ...)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from hapo.config import AlgoConfig
from hapo.models import Actor


@dataclass
class AgentBatch:
    """One agent's share of an iteration's batch, flattened over time and environments (B rows).

    `old_log_prob` and `old_params` come from this agent's policy just before its update
    (`Actor.dist_params`); `factor` is the compound factor M of the agents updated
    before it in this iteration (a constant: no gradient flows into it).
    """

    obs: torch.Tensor  # float32 [B, obs_size]
    actions: torch.Tensor  # float32 [B, action_size] or int64 [B]
    action_mask: torch.Tensor | None  # bool [B, choices] or None
    advantages: torch.Tensor  # float32 [B]
    old_log_prob: torch.Tensor  # float32 [B]
    old_params: torch.Tensor  # float32 [B, P]
    factor: torch.Tensor  # float32 [B]

    def __len__(self) -> int:
        return self.obs.shape[0]

    def rows(self, index: torch.Tensor) -> AgentBatch:
        mask = None if self.action_mask is None else self.action_mask[index]
        return AgentBatch(
            self.obs[index], self.actions[index], mask, self.advantages[index],
            self.old_log_prob[index], self.old_params[index], self.factor[index],
        )


class ActorUpdate(ABC):
    """Improves one actor on its `AgentBatch`; one instance per distinct actor (shared actors share it).

    An update maximises a surrogate of `ratio * factor * advantages`, where ratio is
    pi_new / pi_old of the agent's own actions. It returns scalar metrics by name.
    """

    def __init__(self, actor: Actor, cfg: AlgoConfig):
        self.actor = actor
        self.cfg = cfg

    @abstractmethod
    def update(self, batch: AgentBatch, generator: torch.Generator) -> dict[str, float]:
        """Change `self.actor` in place; `generator` drives any randomness (minibatch order)."""

    def scale_learning_rate(self, fraction: float) -> None:
        """Use `fraction` of the configured learning rate from now on (no-op without a learning rate)."""

    def state_dict(self) -> dict:
        """Everything besides the actor's weights needed to resume exactly (e.g. optimiser state)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


def minibatches(size: int, count: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """A random split of range(size) into `count` index tensors of (nearly) equal length."""
    return torch.randperm(size, generator=generator).split(math.ceil(size / count))


def clipped_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters, max_grad_norm: float) -> float:
    """One optimiser step on `loss` with the gradient norm clipped; returns the norm before clipping."""
    optimizer.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    return norm.item()


class Means:
    """Means of named scalars over the optimisation steps of one update."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1

    def result(self) -> dict[str, float]:
        return {key: total / self._counts[key] for key, total in self._sums.items()}


class OptimizerState:
    """`state_dict`/`load_state_dict` of an update whose only state is `self.optimizer`, and
    its learning-rate schedule around `self.base_lr`."""

    optimizer: torch.optim.Optimizer
    base_lr: float

    def scale_learning_rate(self, fraction: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * fraction

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
