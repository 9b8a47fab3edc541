"""HAPPO: the clipped surrogate of one agent, weighted by the compound factor M."""

from __future__ import annotations

import torch

from hapo.algos.base import ActorUpdate, AgentBatch, minibatches
from hapo.config import AlgoConfig
from hapo.models import Actor


class HappoUpdate(ActorUpdate):
    """Adam on -E[min(r * M * A, clip(r, 1 - eps, 1 + eps) * M * A)] - c_H * entropy, several epochs of minibatches."""

    def __init__(self, actor: Actor, cfg: AlgoConfig):
        super().__init__(actor, cfg)
        self.optimizer = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps)

    def update(self, batch: AgentBatch, generator: torch.Generator) -> dict[str, float]:
        cfg = self.cfg
        weighted = batch.factor * batch.advantages
        totals = {"policy_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}
        steps = 0
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
                self.optimizer.zero_grad()
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    totals["policy_loss"] += -surrogate.item()
                    totals["entropy"] += entropy.item()
                    # k3 estimator of KL(old || new): (r - 1) - log r, unbiased and >= 0.
                    totals["approx_kl"] += ((ratio - 1) - log_ratio).mean().item()
                    totals["clip_fraction"] += ((ratio - 1).abs() > cfg.clip).float().mean().item()
                    totals["grad_norm"] += grad_norm.item()
                steps += 1
        return {key: value / steps for key, value in totals.items()}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
