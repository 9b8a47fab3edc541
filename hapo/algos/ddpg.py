"""The deterministic policy gradient step of one agent (MADDPG, MATD3, HADDPG, HATD3): Adam on
-E[Q(s, a^1, ..., mu_i(o_i), ..., a^n)], the other agents' actions held fixed by the scheme
(`sequential.py`: the new actions of the agents updated before it; `simultaneous.py`: the
buffer's), and the agent's target actor.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from hapo.algos.base import OptimizerState
from hapo.config import AlgoConfig
from hapo.models import DeterministicActor


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` without gradients: a target network."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, polyak: float) -> None:
    """target <- (1 - polyak) * target + polyak * online, parameter by parameter (buffers are constants)."""
    for t, p in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(p, polyak)


def with_action(actions: Sequence[torch.Tensor], agent: int, action: torch.Tensor) -> list[torch.Tensor]:
    """The joint action `actions` with agent `agent`'s replaced by `action`."""
    return [*actions[:agent], action, *actions[agent + 1:]]


class DeterministicActorUpdate(OptimizerState):
    """One agent's deterministic actor, its Adam optimiser and its target actor.

    One instance per agent (the off-policy algorithms do not share actors).
    """

    def __init__(self, actor: DeterministicActor, cfg: AlgoConfig):
        self.actor, self.cfg = actor, cfg
        self.target = frozen_copy(actor)
        self.base_lr = cfg.actor_lr
        self.optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps)

    def update(
        self, obs: torch.Tensor, joint: Sequence[torch.Tensor], agent: int, value_of_joint: Callable[[list[torch.Tensor]], torch.Tensor],
    ) -> dict[str, float]:
        """One Adam step on -mean(Q(s, joint with agent `agent`'s action replaced by mu(obs))).

        Args:
          obs: float32 [B, obs_size], the agent's observations of the sampled transitions.
          joint: per agent [B, action_size], the actions the other agents are held at.
          agent: this agent's index in `joint`.
          value_of_joint: a joint action (per agent) -> Q [B] of the sampled states.
        """
        parameters = list(self.actor.parameters())
        loss = -value_of_joint(with_action(joint, agent, self.actor(obs))).mean()
        self.optimizer.zero_grad()
        loss.backward(inputs=parameters)  # the critic's weights get no gradient
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
        self.optimizer.step()
        return {"policy_loss": loss.item(), "grad_norm": grad_norm.item()}

    @torch.no_grad()
    def target_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """The target actor's actions [B, action_size] for observations [B, obs_size]."""
        return self.target(obs)

    def soft_update(self, polyak: float) -> None:
        polyak_update(self.target, self.actor, polyak)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "target": self.target.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.target.load_state_dict(state["target"])


# An off-policy update scheme (`sequential_q_update`, `simultaneous_q_update`), called as
# scheme(updaters, obs, buffer_actions, value_of_joint, order) -> the agents' metrics (index order):
# obs and buffer_actions per agent [B, ...]; value_of_joint maps a joint action (per agent) to Q [B].
OffPolicyScheme = Callable[
    [Sequence[DeterministicActorUpdate], Sequence[torch.Tensor], Sequence[torch.Tensor], Callable[[list[torch.Tensor]], torch.Tensor], Sequence[int]],
    list[dict[str, float]],
]
