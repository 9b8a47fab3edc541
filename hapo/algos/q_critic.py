"""The critic kinds of the off-policy algorithms: Q-functions of the global state and the joint action,
with target networks.

- `CriticKind.CENTRALISED_Q` (MADDPG, HADDPG): one Q(s, a); its target network gives the
  bootstrap, and the actors are updated after every critic update.
- `CriticKind.TWIN_Q` (MATD3, HATD3): TD3's critic: two Q-functions trained on the same
  target, which bootstraps from the smaller of their target networks' values at the target
  actors' actions plus clipped Gaussian noise (target policy smoothing); the actors and every
  target network are updated every `algo.policy_freq` critic updates, from the first Q.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from hapo.algos.base import OptimizerState
from hapo.algos.critic import CriticKind
from hapo.algos.ddpg import frozen_copy, polyak_update
from hapo.config import Config
from hapo.models import QNetwork

HEADS = {CriticKind.CENTRALISED_Q: 1, CriticKind.TWIN_Q: 2}


class QCritic(OptimizerState):
    """One (`CENTRALISED_Q`) or two (`TWIN_Q`) Q(state, joint action) with their target networks
    and one Adam optimiser over all heads.

    Args:
      kind: the algorithm's critic kind.
      state_size: the global state's size.
      action_sizes: the agents' action sizes (the joint action is their concatenation).
      config: the run's config (model for the networks, algo for the optimiser and TD3's settings).
    """

    def __init__(self, kind: CriticKind, state_size: int, action_sizes: Sequence[int], config: Config):
        if kind not in HEADS:
            raise ValueError(f"QCritic is for the off-policy critic kinds {', '.join(k.value for k in HEADS)}, got {kind.value}")
        self.kind, self.cfg = kind, config.algo
        self.heads = [QNetwork(state_size, sum(action_sizes), config.model) for _ in range(HEADS[kind])]
        self.targets = [frozen_copy(head) for head in self.heads]
        self.base_lr = config.algo.critic_lr
        parameters = itertools.chain.from_iterable(head.parameters() for head in self.heads)
        self.optimizer = torch.optim.Adam(parameters, lr=config.algo.critic_lr, eps=config.algo.adam_eps)

    @property
    def twin(self) -> bool:
        """TD3's critic: twin heads, the smaller target, target policy smoothing, delayed actor updates."""
        return self.kind is CriticKind.TWIN_Q

    def actors_due(self, critic_updates: int) -> bool:
        """Whether the actors (and the targets) are updated after critic update number `critic_updates` (from 1)."""
        return not self.twin or critic_updates % self.cfg.policy_freq == 0

    def value(self, state: torch.Tensor, actions: list[torch.Tensor]) -> torch.Tensor:
        """Q [B] of the first head: what the actors maximise."""
        return self.heads[0](state, actions)

    @torch.no_grad()
    def target_value(self, state: torch.Tensor, actions: list[torch.Tensor]) -> torch.Tensor:
        """The target networks' Q [B]: the smaller of the twins' values."""
        values = [target(state, actions) for target in self.targets]
        return values[0] if len(values) == 1 else torch.min(values[0], values[1])

    @torch.no_grad()
    def bootstrap_actions(self, actions: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The target actors' actions [B, action_size] as the bootstrap uses them: under `TWIN_Q`
        with noise N(0, (policy_noise * scale)^2) clipped to +-noise_clip * scale, then clamped
        to the action box offset +- scale; as they are otherwise."""
        if not self.twin:
            return actions
        noise = torch.randn(actions.shape, generator=generator) * (self.cfg.policy_noise * scale)
        limit = self.cfg.noise_clip * scale
        return (actions + torch.max(torch.min(noise, limit), -limit)).clamp(offset - scale, offset + scale)

    def update(self, state: torch.Tensor, actions: list[torch.Tensor], targets: torch.Tensor) -> dict[str, float]:
        """One Adam step on the sum over heads of the mean squared error to `targets` [B]."""
        values = [head(state, actions) for head in self.heads]
        loss = sum(F.mse_loss(v, targets) for v in values)
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.get_total_norm([p.grad for head in self.heads for p in head.parameters()])
        self.optimizer.step()
        return {"q_loss": loss.item() / len(values), "q_mean": values[0].mean().item(), "target_mean": targets.mean().item(), "grad_norm": grad_norm.item()}

    def soft_update(self, polyak: float) -> None:
        for target, head in zip(self.targets, self.heads, strict=True):
            polyak_update(target, head, polyak)

    # Checkpoint layout: "critic" = the networks, "critic_update" = the optimiser (OptimizerState).
    def networks_state_dict(self) -> dict:
        return {"heads": [h.state_dict() for h in self.heads], "targets": [t.state_dict() for t in self.targets]}

    def load_networks_state_dict(self, state: dict) -> None:
        for modules, states in ((self.heads, state["heads"]), (self.targets, state["targets"])):
            for module, module_state in zip(modules, states, strict=True):
                module.load_state_dict(module_state)
