"""HAPPO: the clipped surrogate of one agent, weighted by the compound factor M."""

from __future__ import annotations

import torch

from hapo.algos.base import ActorUpdate, AgentBatch, Means, OptimizerState, clipped_step, minibatches
from hapo.config import AlgoConfig
from hapo.models import Actor


class HappoUpdate(OptimizerState, ActorUpdate):
    """Adam on -E[min(r * M * A, clip(r, 1 - eps, 1 + eps) * M * A)] - c_H * entropy, several epochs of minibatches."""

    def __init__(self, actor: Actor, cfg: AlgoConfig):
        super().__init__(actor, cfg)
        self.base_lr = cfg.actor_lr
        self.optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps)

    def update(self, batch: AgentBatch, generator: torch.Generator) -> dict[str, float]:
        cfg = self.cfg
        weighted = batch.factor * batch.advantages
        means = Means()
        for _ in range(cfg.ppo_epochs):
            for index in minibatches(len(batch), cfg.num_minibatches, generator):
                mb = batch.rows(index)
                params = self.actor.dist_params(mb.obs, mb.action_mask)
                log_ratio = self.actor.log_prob_from_params(params, mb.actions) - mb.old_log_prob
                ratio = log_ratio.exp()
                w = weighted[index]
                surrogate = torch.min(ratio * w, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * w).mean()
                entropy = self.actor.entropy_from_params(params).mean()
                loss = -surrogate - cfg.entropy_coef * entropy
                grad_norm = clipped_step(self.optimizer, loss, self.actor.parameters(), cfg.max_grad_norm)
                with torch.no_grad():
                    means.add(
                        policy_loss=-surrogate.item(),
                        entropy=entropy.item(),
                        # k3 estimator of KL(old || new): (r - 1) - log r, unbiased and >= 0.
                        approx_kl=((ratio - 1) - log_ratio).mean().item(),
                        clip_fraction=((ratio - 1).abs() > cfg.clip).float().mean().item(),
                        grad_norm=grad_norm,
                    )
        return means.result()
