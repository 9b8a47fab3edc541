"""The heterogeneous-agent sequential update with the compound factor M, shared by every algorithm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hapo.algos.base import ActorUpdate, AgentBatch
from hapo.models import Actor


@dataclass
class AgentData:
    """What one agent contributed to the batch: observations, its actions, its masks (B rows)."""

    obs: torch.Tensor
    actions: torch.Tensor
    action_mask: torch.Tensor | None


@dataclass
class SequentialResult:
    metrics: list[dict[str, float]]  # per agent, in agent index order
    factors: list[torch.Tensor]  # per agent, the factor M it was given, in agent index order
    final_factor: torch.Tensor  # the product of every agent's ratio: the joint policy's new/old ratio


def sequential_update(
    actors: Sequence[Actor],
    updaters: Sequence[ActorUpdate],
    data: Sequence[AgentData],
    advantages: torch.Tensor,
    order: Sequence[int],
    generator: torch.Generator,
) -> SequentialResult:
    """Update the agents one by one in `order`, each weighted by the compound factor M.

    M starts at 1. Agent i_m is updated on E[ratio * M * A]; afterwards M is multiplied by
    i_m's own ratio pi_new(a|o) / pi_old(a|o) on the batch (the product over action
    dimensions, since log-probabilities are summed over them). No gradient flows through M.
    """
    factor = torch.ones_like(advantages)
    metrics: list[dict[str, float]] = [{} for _ in actors]
    factors: list[torch.Tensor] = [factor] * len(actors)
    for i in order:
        actor, d = actors[i], data[i]
        with torch.no_grad():
            old_params = actor.dist_params(d.obs, d.action_mask)
            old_log_prob = actor.log_prob_from_params(old_params, d.actions)
        batch = AgentBatch(d.obs, d.actions, d.action_mask, advantages, old_log_prob, old_params, factor)
        factors[i] = factor
        metrics[i] = updaters[i].update(batch, generator)
        with torch.no_grad():
            new_log_prob = actor.log_prob(d.obs, d.actions, d.action_mask)
        factor = factor * torch.exp(new_log_prob - old_log_prob)
        if not torch.isfinite(factor).all():
            raise FloatingPointError(
                f"the compound factor is no longer finite after updating agent {i}: its policy moved too far "
                "in one iteration (lower algo.actor_lr, algo.clip or algo.ppo_epochs)"
            )
    return SequentialResult(metrics, factors, factor)
