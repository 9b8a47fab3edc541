"""Regression of the centralised critic V(state) on the GAE returns."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from hapo.algos.base import minibatches
from hapo.config import AlgoConfig
from hapo.models import Critic, ValueNormalizer


class CriticUpdate:
    """Adam on the Huber loss between V(state) and the (normalised) returns.

    With `value_clip`, the loss is the larger of the plain loss and the loss of the
    prediction clipped to within `clip` of the old prediction (as in MAPPO and HARL).
    """

    def __init__(self, critic: Critic, normalizer: ValueNormalizer | None, cfg: AlgoConfig):
        self.critic, self.normalizer, self.cfg = critic, normalizer, cfg
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
        totals = {"value_loss": 0.0, "grad_norm": 0.0}
        steps = 0
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
                self.optimizer.zero_grad()
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                totals["value_loss"] += loss.item()
                totals["grad_norm"] += grad_norm.item()
                steps += 1
        return {key: value / steps for key, value in totals.items()}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
