"""HAA2C: the plain (unclipped) importance-weighted policy gradient of one agent, weighted by M.

As HARL's HAA2C: `a2c_epochs` passes of `num_minibatches` minibatches of Adam on
-E[r * M * A] - c_H * entropy, with the gradient norm clipped. Without a clip or a trust
region, only the learning rate and the few epochs keep r near 1.
"""

from __future__ import annotations

import torch

from hapo.algos.base import PolicyGradientUpdate
from hapo.models.networks import masked_mean


class Haa2cUpdate(PolicyGradientUpdate):
    """Adam on -E[r * M * A] - c_H * entropy, `a2c_epochs` epochs of minibatches."""

    @property
    def epochs(self) -> int:
        return self.cfg.a2c_epochs

    def surrogate(self, ratio: torch.Tensor, weighted: torch.Tensor, active: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        return masked_mean(ratio * weighted, active), {}
