"""The heterogeneous-agent sequential scheme: agents one by one, each weighted by the compound factor M
(HAPPO, HATRPO, HAA2C)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hapo.algos.base import ActorUpdate, Advantages, AgentData, SchemeResult, agent_batch, new_ratio, old_policy, per_agent
from hapo.models import Actor


def sequential_update(
    actors: Sequence[Actor],
    updaters: Sequence[ActorUpdate],
    data: Sequence[AgentData],
    advantages: Advantages,
    order: Sequence[int],
    generator: torch.Generator,
) -> SchemeResult:
    """Update the agents one by one in `order`, each weighted by the compound factor M.

    M starts at 1. Agent i_m is updated on E[ratio * M * A]; afterwards M is multiplied by
    i_m's own ratio pi_new(a|o) / pi_old(a|o) on the batch (the product over action
    dimensions, since log-probabilities are summed over them). No gradient flows through M.
    `advantages` is one tensor [B] for every agent or one per agent.
    """
    advantages = per_agent(advantages, len(actors))
    factor = torch.ones_like(advantages[order[0]])
    metrics: list[dict[str, float]] = [{} for _ in actors]
    factors: list[torch.Tensor] = [factor] * len(actors)
    for i in order:
        actor, d = actors[i], data[i]
        old = old_policy(actor, d)
        factors[i] = factor
        metrics[i] = updaters[i].update(agent_batch(d, advantages[i], old, factor), generator)
        factor = factor * new_ratio(actor, d, old.log_prob)
        if not torch.isfinite(factor).all():
            raise FloatingPointError(
                f"the compound factor is no longer finite after updating agent {i}: its policy moved too far "
                "in one iteration (lower algo.actor_lr, algo.clip or algo.ppo_epochs)"
            )
    return SchemeResult(metrics, factors, factor)
