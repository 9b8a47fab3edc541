"""The simultaneous scheme: every agent updated from the same old joint policy, without the factor
(MAPPO, IPPO), and its off-policy form, each agent against the buffer's actions of the others
(MADDPG, MATD3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from hapo.algos.base import ActorUpdate, Advantages, AgentBatch, AgentData, SchemeResult, agent_batch, new_ratio, old_policy, per_agent
from hapo.algos.ddpg import DeterministicActorUpdate
from hapo.models import Actor


def simultaneous_update(
    actors: Sequence[Actor],
    updaters: Sequence[ActorUpdate],
    data: Sequence[AgentData],
    advantages: Advantages,
    order: Sequence[int],
    generator: torch.Generator,
) -> SchemeResult:
    """Update every agent on E[ratio * A] with M = 1, whatever the other agents' updates.

    Every agent's old log-probabilities are taken before any actor changes. Agents that share
    one actor (`algo.share_param`) get one update of it on their rows stacked: the surrogate
    is the mean over all their rows, the paper's Eq. 5 (a sum over agents) divided by their number. Actors are updated in the order of their first agent
    in `order`, which only decides the order in which they draw minibatches from `generator`.
    `advantages` is one tensor [B] for every agent or one per agent (per-agent critics).
    """
    advantages = per_agent(advantages, len(actors))
    old = [old_policy(actor, d) for actor, d in zip(actors, data, strict=True)]
    ones = torch.ones_like(advantages[order[0]])
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(id(actors[i]), []).append(i)
    metrics: list[dict[str, float]] = [{} for _ in actors]
    for agents in groups.values():
        batch = _stacked([agent_batch(data[i], advantages[i], old[i], ones) for i in agents])
        result = updaters[agents[0]].update(batch, generator)
        for i in agents:
            metrics[i] = result
    joint_ratio = ones
    for actor, d, o in zip(actors, data, old):
        joint_ratio = joint_ratio * new_ratio(actor, d, o.log_prob)
    return SchemeResult(metrics, [ones] * len(actors), joint_ratio)


def simultaneous_q_update(
    updaters: Sequence[DeterministicActorUpdate],
    obs: Sequence[torch.Tensor],
    buffer_actions: Sequence[torch.Tensor],
    value_of_joint: Callable[[list[torch.Tensor]], torch.Tensor],
    order: Sequence[int],
) -> list[dict[str, float]]:
    """Update every deterministic actor against the other agents' actions from the buffer (MADDPG,
    MATD3): agent i maximises Q(s, a^1, ..., mu_i(o_i), ..., a^n) with a^j the sampled actions,
    whatever the other agents' updates. `order` only orders the updates.
    """
    metrics: list[dict[str, float]] = [{} for _ in updaters]
    for i in order:
        metrics[i] = updaters[i].update(obs[i], buffer_actions, i, value_of_joint)
    return metrics


def _stacked(batches: list[AgentBatch]) -> AgentBatch:
    """The rows of several agents' batches, one after another (one batch is returned as it is)."""
    if len(batches) == 1:
        return batches[0]
    masks = [b.action_mask for b in batches]
    return AgentBatch(
        torch.cat([b.obs for b in batches]), torch.cat([b.actions for b in batches]),
        None if masks[0] is None else torch.cat(masks), torch.cat([b.advantages for b in batches]),
        torch.cat([b.old_log_prob for b in batches]), torch.cat([b.old_params for b in batches]),
        torch.cat([b.factor for b in batches]), None if batches[0].active is None else torch.cat([b.active for b in batches]),
    )
