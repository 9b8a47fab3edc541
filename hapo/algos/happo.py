"""HAPPO: the clipped surrogate of one agent, weighted by the compound factor M.

With M = 1 (the simultaneous scheme) this is the PPO step of MAPPO and IPPO.
"""

from __future__ import annotations

import torch

from hapo.algos.base import PolicyGradientUpdate
from hapo.models.networks import masked_mean


class HappoUpdate(PolicyGradientUpdate):
    """Adam on -E[min(r * M * A, clip(r, 1 - eps, 1 + eps) * M * A)] - c_H * entropy, `ppo_epochs` epochs of minibatches."""

    @property
    def epochs(self) -> int:
        return self.cfg.ppo_epochs

    def surrogate(self, ratio: torch.Tensor, weighted: torch.Tensor, active: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        clip = self.cfg.clip
        surrogate = masked_mean(torch.min(ratio * weighted, ratio.clamp(1 - clip, 1 + clip) * weighted), active)
        with torch.no_grad():
            clip_fraction = masked_mean(((ratio - 1).abs() > clip).float(), active).item()
        return surrogate, {"clip_fraction": clip_fraction}
