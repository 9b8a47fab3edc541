"""Regression of the centralised critic V(state) on the GAE returns."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from hapo.algos.base import Means, OptimizerState, clipped_step, minibatches
from hapo.config import AlgoConfig
from hapo.models import Critic, ValueNormalizer


class CriticUpdate(OptimizerState):
    """Adam on the Huber loss between V(state) and the (normalised) returns.

    With `value_clip`, the loss is the larger of the plain loss and the loss of the
    prediction clipped to within `clip` of the old prediction (as in MAPPO and HARL).
    """

    def __init__(self, critic: Critic, normalizer: ValueNormalizer | None, cfg: AlgoConfig):
        self.critic, self.normalizer, self.cfg = critic, normalizer, cfg
        self.base_lr = cfg.critic_lr
        self.optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps)

    def update(self, states: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """One critic update.

        Args:
          states: float32 [B, state_size].
          returns: float32 [B], in reward units.
          old_values: float32 [B], the critic's raw outputs (normaliser units) at collection.
        """
        cfg = self.cfg
        if self.normalizer is not None:
            self.normalizer.update(returns)
            targets = self.normalizer.normalize(returns)
        else:
            targets = returns
        means = Means()
        for _ in range(cfg.critic_epochs):
            for index in minibatches(len(states), cfg.critic_num_minibatches, generator):
                values = self.critic(states[index])
                target = targets[index]
                loss = F.huber_loss(values, target, delta=cfg.huber_delta, reduction="none")
                if cfg.value_clip:
                    old = old_values[index]
                    clipped = old + (values - old).clamp(-cfg.clip, cfg.clip)
                    loss = torch.max(loss, F.huber_loss(clipped, target, delta=cfg.huber_delta, reduction="none"))
                loss = loss.mean()
                grad_norm = clipped_step(self.optimizer, loss, self.critic.parameters(), cfg.max_grad_norm)
                means.add(value_loss=loss.item(), grad_norm=grad_norm)
        return means.result()
