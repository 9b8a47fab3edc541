"""HATRPO: one natural-gradient step of one agent on E[r * M * A], inside a KL trust region."""

from __future__ import annotations

import logging
import math

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import hapo
from hapo.algos.base import ActorUpdate, AgentBatch
from hapo.models.networks import AutogradFisher, masked_mean

log = logging.getLogger(__name__)


class HatrpoUpdate(ActorUpdate):
    """Maximise the surrogate L(theta) = E[r * M * A] subject to E_s[KL(pi_old || pi_theta)] <= delta.

    g = grad L at the old parameters; x solves (F + damping I) x = g by conjugate gradient
    with the actor's Fisher F, the Hessian of the mean KL at the old parameters, as explicit
    Jacobian products on one forward pass (`Actor.fisher`, in C++; `algo.fisher: autograd`
    takes the double-backward reference instead); the
    full step is sqrt(2 delta / x^T (F + damping I) x) * x, the step whose quadratic KL model
    equals delta (with the damped curvature, as the authors' code). A backtracking line
    search tries the step scaled by backtrack_coeff^k, k = 0 .. ls_steps - 1, and accepts the
    first whose mean KL is <= delta and whose surrogate gain is positive and at least
    accept_ratio times the linear prediction g . step. If none is accepted, the old
    parameters stay, bit for bit. There is no optimiser: the update has no state to resume.
    """

    def update(self, batch: AgentBatch, generator: torch.Generator) -> dict[str, float]:
        cfg = self.cfg
        actor = self.actor
        params = list(actor.parameters())
        weighted = batch.factor * batch.advantages

        surrogate = self._surrogate(batch, weighted, actor.dist_params(batch.obs, batch.action_mask))
        g = parameters_to_vector(torch.autograd.grad(surrogate, params))
        if cfg.fisher == "explicit":
            # With no active row at all, g = 0 and no step is taken: the weights may as well be uniform.
            weights = batch.active if batch.active is not None and batch.active.any() else None
            fisher = actor.fisher(batch.obs, batch.action_mask, damping=cfg.cg_damping, row_weights=weights)
        else:
            fisher = AutogradFisher.of_actor(actor, batch.obs, batch.action_mask, damping=cfg.cg_damping, weights=batch.active)
        solve = fisher.solve(g, max_iterations=cfg.cg_iterations, tolerance=cfg.cg_tolerance)
        metrics = {
            "grad_norm": g.norm().item(),
            "cg_iterations": float(solve.iterations),
            "cg_residual": solve.residual_norm,
        }
        old_surrogate = surrogate.item()
        step = self._full_step(solve)
        # No step at all when g = 0 (e.g. all advantages zero): neither accepted nor rejected.
        backtracks, accepted_kl, improvement = 0, 0.0, 0.0
        rejected = False
        if step is not None:
            old_vector = parameters_to_vector(params).detach()
            expected = (g @ step).item()
            found = self._line_search(batch, weighted, params, old_vector, step, old_surrogate, expected)
            if found is None:
                vector_to_parameters(old_vector, params)
                log.debug("HATRPO: no line-search step accepted (actor with obs size %d); parameters kept", actor.obs_size)
                backtracks, rejected = cfg.ls_steps, True
            else:
                backtracks, accepted_kl, improvement = found
        with torch.no_grad():
            entropy = masked_mean(actor.entropy(batch.obs, batch.action_mask), batch.active).item()
        metrics.update(
            accepted=float(step is not None and not rejected),
            rejected=float(rejected),
            backtracks=float(backtracks),
            kl=accepted_kl,
            surrogate_improvement=improvement,
            policy_loss=-(old_surrogate + improvement),
            entropy=entropy,
        )
        return metrics

    def _surrogate(self, batch: AgentBatch, weighted: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """E[r * M * A] for the distribution parameters `params` of the current actor."""
        log_prob = self.actor.log_prob_from_params(params, batch.actions)
        return masked_mean(torch.exp(log_prob - batch.old_log_prob) * weighted, batch.active)

    def _surrogate_and_kl(self, batch: AgentBatch, weighted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E[r * M * A] and the mean KL(old || current), from one forward of the actor."""
        params = self.actor.dist_params(batch.obs, batch.action_mask)
        return self._surrogate(batch, weighted, params), self.actor.kl_from_params(batch.old_params, params, batch.active)

    def _full_step(self, solve: hapo.ConjugateGradientResult) -> torch.Tensor | None:
        """The step of squared (damped) Fisher norm 2 delta along x; None when x is zero (g = 0)."""
        if not solve.curvature > 0:
            return None
        return math.sqrt(2 * self.cfg.kl_threshold / solve.curvature) * solve.x

    @torch.no_grad()
    def _line_search(
        self, batch: AgentBatch, weighted: torch.Tensor, params: list[torch.nn.Parameter],
        old_vector: torch.Tensor, step: torch.Tensor, old_surrogate: float, expected: float,
    ) -> tuple[int, float, float] | None:
        """Set the parameters to the first acceptable candidate; (backtracks, its KL, its gain) or None."""
        cfg = self.cfg
        for k in range(cfg.ls_steps):
            coefficient = cfg.backtrack_coeff**k
            vector_to_parameters(old_vector + coefficient * step, params)
            surrogate, kl_tensor = self._surrogate_and_kl(batch, weighted)
            improvement, kl = surrogate.item() - old_surrogate, kl_tensor.item()
            if kl <= cfg.kl_threshold and improvement > 0 and improvement >= cfg.accept_ratio * coefficient * expected:
                return k, kl, improvement
        return None
