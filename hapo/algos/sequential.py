"""The heterogeneous-agent sequential scheme: agents one by one, each weighted by the compound factor M
(HAPPO, HATRPO, HAA2C), and its off-policy form, each agent against the new actions of those before
it (HADDPG, HATD3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from hapo.algos.base import ActorUpdate, Advantages, AgentData, SchemeResult, agent_batch, new_ratio, old_policy, per_agent
from hapo.algos.ddpg import DeterministicActorUpdate
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


def sequential_q_update(
    updaters: Sequence[DeterministicActorUpdate],
    obs: Sequence[torch.Tensor],
    buffer_actions: Sequence[torch.Tensor],
    value_of_joint: Callable[[list[torch.Tensor]], torch.Tensor],
    order: Sequence[int],
) -> list[dict[str, float]]:
    """Update the deterministic actors one by one in `order` (HADDPG, HATD3).

    Agent i_m maximises Q(s, a) where a holds its own mu(o), the new actions of the agents
    i_1 .. i_{m-1} updated before it, and the current (not yet updated) actors' actions of the
    others: the joint action starts at every actor's mu(o) on the batch, and each agent's entry
    is replaced by its new actor's action once it is updated. The buffer's actions are not used.
    """
    with torch.no_grad():
        joint = [u.actor(o) for u, o in zip(updaters, obs, strict=True)]
    metrics: list[dict[str, float]] = [{} for _ in updaters]
    for i in order:
        metrics[i] = updaters[i].update(obs[i], joint, i, value_of_joint)
        with torch.no_grad():
            joint[i] = updaters[i].actor(obs[i])
    return metrics
