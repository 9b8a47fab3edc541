"""The interface shared by the per-agent updates (HAPPO, HATRPO, HAA2C, ...) and by the update
schemes that call them (`sequential.py`, `simultaneous.py`)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from hapo.config import AlgoConfig
from hapo.models import Actor
from hapo.models.networks import masked_mean


@dataclass
class AgentBatch:
    """One agent's share of an iteration's batch, flattened over time and environments (B rows).

    `old_log_prob` and `old_params` come from this agent's policy just before its update
    (`Actor.dist_params`); `factor` is the compound factor M of the agents updated
    before it in this iteration (a constant: no gradient flows into it). `active`, for envs
    that report it (SMAX: the unit is alive), is 1 for the rows where the agent acts and 0
    where it does not: the losses average over the active rows only (`masked_mean`).
    """

    obs: torch.Tensor  # float32 [B, obs_size]
    actions: torch.Tensor  # float32 [B, action_size] or int64 [B]
    action_mask: torch.Tensor | None  # bool [B, choices] or None
    advantages: torch.Tensor  # float32 [B]
    old_log_prob: torch.Tensor  # float32 [B]
    old_params: torch.Tensor  # float32 [B, P]
    factor: torch.Tensor  # float32 [B]
    active: torch.Tensor | None = None  # float32 [B] of 0/1, or None: every row counts

    def __len__(self) -> int:
        return self.obs.shape[0]

    def rows(self, index: torch.Tensor) -> AgentBatch:
        mask = None if self.action_mask is None else self.action_mask[index]
        return AgentBatch(
            self.obs[index], self.actions[index], mask, self.advantages[index],
            self.old_log_prob[index], self.old_params[index], self.factor[index],
            None if self.active is None else self.active[index],
        )


@dataclass
class AgentData:
    """What one agent contributed to the batch: observations, its actions, its masks (B rows)."""

    obs: torch.Tensor
    actions: torch.Tensor
    action_mask: torch.Tensor | None
    active: torch.Tensor | None = None  # float32 [B] of 0/1 (see AgentBatch), or None


@dataclass
class SchemeResult:
    """What an update scheme reports, per agent in agent index order."""

    metrics: list[dict[str, float]]  # the metrics of the update that changed the agent's actor
    factors: list[torch.Tensor]  # the factor M the agent was given [B]
    final_factor: torch.Tensor  # the product of every agent's ratio: the joint policy's new/old ratio [B]


@dataclass
class OldPolicy:
    """An agent's policy on its batch before its update."""

    params: torch.Tensor  # distribution parameters [B, P] (`Actor.dist_params`)
    log_prob: torch.Tensor  # log-probabilities of the agent's actions [B]


def old_policy(actor: Actor, data: AgentData) -> OldPolicy:
    with torch.no_grad():
        params = actor.dist_params(data.obs, data.action_mask)
        return OldPolicy(params, actor.log_prob_from_params(params, data.actions))


def agent_batch(data: AgentData, advantages: torch.Tensor, old: OldPolicy, factor: torch.Tensor) -> AgentBatch:
    return AgentBatch(data.obs, data.actions, data.action_mask, advantages, old.log_prob, old.params, factor, data.active)


def new_ratio(actor: Actor, data: AgentData, old_log_prob: torch.Tensor) -> torch.Tensor:
    """pi_new(a|o) / pi_old(a|o) [B] of an updated agent (a product over action dimensions)."""
    with torch.no_grad():
        return torch.exp(actor.log_prob(data.obs, data.actions, data.action_mask) - old_log_prob)


def per_agent(advantages: Advantages, num_agents: int) -> list[torch.Tensor]:
    """Advantages [B] for all agents (a centralised critic) or one tensor per agent, as a list per agent."""
    if isinstance(advantages, torch.Tensor):
        return [advantages] * num_agents
    if len(advantages) != num_agents:
        raise ValueError(f"advantages must be one tensor [B] or one per agent ({num_agents}), got {len(advantages)}")
    return list(advantages)


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


class PolicyGradientUpdate(OptimizerState, ActorUpdate):
    """Adam on -surrogate(r, M * A) - entropy_coef * entropy: `epochs` passes of `num_minibatches`
    minibatches each, the gradient norm clipped to max_grad_norm. Subclasses give the surrogate."""

    def __init__(self, actor: Actor, cfg: AlgoConfig):
        super().__init__(actor, cfg)
        self.base_lr = cfg.actor_lr
        self.optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps)

    @property
    @abstractmethod
    def epochs(self) -> int:
        """Passes over the batch per update."""

    @abstractmethod
    def surrogate(self, ratio: torch.Tensor, weighted: torch.Tensor, active: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The mean surrogate to maximise, from the ratio [b] and M * A [b] (over the active rows
        when `active` is given), and its diagnostics by name."""

    def update(self, batch: AgentBatch, generator: torch.Generator) -> dict[str, float]:
        cfg = self.cfg
        weighted = batch.factor * batch.advantages
        means = Means()
        for _ in range(self.epochs):
            for index in minibatches(len(batch), cfg.num_minibatches, generator):
                mb = batch.rows(index)
                params = self.actor.dist_params(mb.obs, mb.action_mask)
                log_ratio = self.actor.log_prob_from_params(params, mb.actions) - mb.old_log_prob
                ratio = log_ratio.exp()
                surrogate, diagnostics = self.surrogate(ratio, weighted[index], mb.active)
                entropy = masked_mean(self.actor.entropy_from_params(params), mb.active)
                loss = -surrogate - cfg.entropy_coef * entropy
                grad_norm = clipped_step(self.optimizer, loss, self.actor.parameters(), cfg.max_grad_norm)
                with torch.no_grad():
                    means.add(
                        policy_loss=-surrogate.item(),
                        entropy=entropy.item(),
                        # k3 estimator of KL(old || new): (r - 1) - log r, unbiased and >= 0.
                        approx_kl=masked_mean((ratio - 1) - log_ratio, mb.active).item(),
                        **diagnostics,
                        grad_norm=grad_norm,
                    )
        return means.result()


# Advantages [B] of every agent (a centralised critic), or one tensor [B] per agent.
Advantages = torch.Tensor | Sequence[torch.Tensor]
# An update scheme (`sequential_update`, `simultaneous_update`): how one iteration's per-agent
# updates combine, called as scheme(actors, updaters, data, advantages, order, generator).
UpdateScheme = Callable[
    [Sequence[Actor], Sequence[ActorUpdate], Sequence[AgentData], Advantages, Sequence[int], torch.Generator], SchemeResult,
]
