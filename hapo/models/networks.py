"""Actors (one per agent), the centralised critic, the running value normaliser, and the deterministic
actors and Q-functions of the off-policy algorithms."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal, kl_divergence
from torch.nn import functional as F

from hapo._core import ConjugateGradientResult, MlpFisher, conjugate_gradient, fisher_vector_product
from hapo.config import ModelConfig

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh}
HIDDEN_GAIN = math.sqrt(2.0)
# std = SIGMOID_STD_SCALE * sigmoid(theta), theta starting at 1: HARL's std_y_coef and std_x_coef.
SIGMOID_STD_SCALE = 0.5
SIGMOID_STD_INITIAL_LOGIT = 1.0


class MLP(nn.Module):
    """Optional input LayerNorm, then Linear layers with the activation between them, and
    with `layernorm="every_layer"` a LayerNorm after every hidden activation (HARL's MLP).

    Layers are plain `nn.Linear` and `nn.LayerNorm` so that `hapo.models.JointPolicy` can
    stack the weights of several agents' networks for one batched forward.
    """

    def __init__(self, in_size: int, out_size: int, cfg: ModelConfig, out_gain: float):
        super().__init__()
        self.norm = nn.LayerNorm(in_size) if cfg.layernorm != "none" else None
        sizes = [in_size, *cfg.hidden_sizes, out_size]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        every = cfg.layernorm == "every_layer"
        self.hidden_norms = nn.ModuleList(nn.LayerNorm(h) for h in cfg.hidden_sizes) if every else None
        self.activation_name = cfg.activation
        for i, layer in enumerate(self.layers):
            nn.init.orthogonal_(layer.weight, gain=out_gain if i == len(self.layers) - 1 else HIDDEN_GAIN)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        activation = ACTIVATIONS[self.activation_name]
        for k, layer in enumerate(self.layers[:-1]):
            x = activation(layer(x))
            if self.hidden_norms is not None:
                x = self.hidden_norms[k](x)
        return self.layers[-1](x)


class Actor(nn.Module):
    """One agent's policy pi(a | o).

    Continuous: a diagonal Gaussian whose mean is the MLP output and whose std is learned
    and state-independent: exp(log_std) (`model.std="exp"`) or SIGMOID_STD_SCALE *
    sigmoid(std_logit) (`"sigmoid"`, the authors' parametrisation, bounded by 0.5). Discrete: a categorical over `action_size`
    choices; an optional bool mask [B, action_size] removes unavailable choices.

    "Distribution parameters" (`dist_params`) are one tensor per batch row, enough to
    rebuild the distribution later (for KL(old || new) in trust-region updates):
    Gaussian [B, 2 * action_size] = (mean, log_std); categorical [B, action_size] = log-probabilities.
    """

    def __init__(self, obs_size: int, action_size: int, kind: str, cfg: ModelConfig):
        super().__init__()
        if kind not in ("continuous", "discrete"):
            raise ValueError(f"action kind must be 'continuous' or 'discrete', got {kind!r}")
        self.obs_size, self.action_size, self.kind = obs_size, action_size, kind
        self.net = MLP(obs_size, action_size, cfg, cfg.output_gain)
        self.std_kind = cfg.std
        if kind == "continuous" and cfg.std == "exp":
            self.log_std = nn.Parameter(torch.full((action_size,), math.log(cfg.initial_std)))
        elif kind == "continuous":
            self.std_logit = nn.Parameter(torch.full((action_size,), SIGMOID_STD_INITIAL_LOGIT))

    def current_log_std(self) -> torch.Tensor:
        """log std [action_size] of a Gaussian actor, differentiable in its parameter."""
        if self.std_kind == "exp":
            return self.log_std
        return math.log(SIGMOID_STD_SCALE) + F.logsigmoid(self.std_logit)

    def dist_params(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(obs)
        if self.kind == "continuous":
            return torch.cat([out, self.current_log_std().expand_as(out)], dim=-1)
        return masked_log_softmax(out, action_mask)

    def distribution_from_params(self, params: torch.Tensor) -> Distribution:
        if self.kind == "continuous":
            mean, log_std = params.chunk(2, dim=-1)
            return Normal(mean, log_std.exp(), validate_args=False)
        return Categorical(logits=params, validate_args=False)

    def distribution(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> Distribution:
        return self.distribution_from_params(self.dist_params(obs, action_mask))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        """log pi(a | o) [B], summed over action dimensions."""
        return self.log_prob_from_params(self.dist_params(obs, action_mask), actions)

    def log_prob_from_params(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        dist = self.distribution_from_params(params)
        if self.kind == "continuous":
            return dist.log_prob(actions).sum(-1)
        return dist.log_prob(actions)

    def entropy(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Entropy [B], summed over action dimensions."""
        return self.entropy_from_params(self.dist_params(obs, action_mask))

    def entropy_from_params(self, params: torch.Tensor) -> torch.Tensor:
        entropy = self.distribution_from_params(params).entropy()
        return entropy.sum(-1) if self.kind == "continuous" else entropy

    def kl(self, obs: torch.Tensor, old_params: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the batch of KL(old || current), differentiable in the current parameters."""
        return self.kl_from_params(old_params, self.dist_params(obs, action_mask))

    def kl_from_params(self, old_params: torch.Tensor, params: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the batch of KL(old || new), given both distributions' parameters (weighted by
        `weights` [B] when given: `masked_mean`)."""
        kl = kl_divergence(self.distribution_from_params(old_params), self.distribution_from_params(params))
        return masked_mean(kl.sum(-1) if self.kind == "continuous" else kl, weights)

    def fisher(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None, damping: float = 0.1,
               row_weights: torch.Tensor | None = None) -> MlpFisher:
        """The operator v -> F v + damping v of this policy on the states obs [B, obs_size] (C++).

        F is the Hessian of `kl(obs, self.dist_params(obs))` at the current parameters, the
        policy's Fisher averaged over the states (weighted by `row_weights` [B] when given), as
        explicit Jacobian products on one forward pass (`hapo.MlpFisher`); flat vectors follow
        `self.parameters()`. `.solve(g, max_iterations, tolerance)` runs conjugate gradient on it.
        """
        net = self.net
        norm = (net.norm.weight, net.norm.bias) if net.norm is not None else None
        hidden_norms = [(n.weight, n.bias) for n in net.hidden_norms] if net.hidden_norms is not None else []
        eps = {m.eps for m in net.modules() if isinstance(m, nn.LayerNorm)}
        options = dict(
            input_norm=norm, hidden_norms=hidden_norms, activation=net.activation_name, norm_eps=eps.pop() if eps else 1e-5,
            damping=damping, row_weights=row_weights,
        )
        if self.kind == "continuous":
            std_param = self.log_std if self.std_kind == "exp" else self.std_logit
            options.update(distribution="gaussian", std_param=std_param, std_kind=self.std_kind, std_scale=SIGMOID_STD_SCALE)
        else:  # a continuous actor ignores masks, as dist_params does (mixed teams give every agent one)
            options.update(distribution="categorical", action_mask=action_mask)
        return MlpFisher(obs, [layer.weight for layer in net.layers], [layer.bias for layer in net.layers], **options)


class AutogradFisher:
    """The operator v -> F v + damping v for F the Hessian of any differentiable scalar `kl` in
    `params`, by double backward (`hapo.fisher_vector_product`, `hapo.conjugate_gradient`), with
    the interface of `Actor.fisher`: the general path, and the reference for the explicit one.
    """

    def __init__(self, kl: torch.Tensor, params: list[torch.Tensor], damping: float = 0.1):
        self.kl, self.params, self.damping = kl, list(params), damping

    @classmethod
    def of_actor(cls, actor: Actor, obs: torch.Tensor, action_mask: torch.Tensor | None = None, damping: float = 0.1,
                 weights: torch.Tensor | None = None) -> AutogradFisher:
        """The Fisher of the actor's mean KL from its current policy on obs (what `Actor.fisher` computes)."""
        with torch.enable_grad():
            params = actor.dist_params(obs, action_mask)
            kl = actor.kl_from_params(params.detach(), params, weights)
        return cls(kl, list(actor.parameters()), damping)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return fisher_vector_product(self.kl, self.params, v, self.damping)

    def solve(self, g: torch.Tensor, max_iterations: int = 10, tolerance: float = 1e-5) -> ConjugateGradientResult:
        return conjugate_gradient(self.kl, self.params, g, self.damping, max_iterations, tolerance)


class DeterministicActor(nn.Module):
    """One agent's deterministic policy mu(o) = offset + scale * tanh(MLP(o)), inside the action
    box: offset = (high + low) / 2, scale = (high - low) / 2 (MADDPG, MATD3, HADDPG, HATD3).

    `offset` and `scale` are buffers, so they travel with the weights in `state_dict`.
    """

    kind = "deterministic"

    def __init__(self, obs_size: int, action_low, action_high, cfg: ModelConfig):
        super().__init__()
        low, high = torch.as_tensor(action_low, dtype=torch.float32), torch.as_tensor(action_high, dtype=torch.float32)
        if low.ndim != 1 or low.shape != high.shape or not (torch.isfinite(low).all() and torch.isfinite(high).all() and (low < high).all()):
            raise ValueError(f"a deterministic actor needs a finite action box with low < high, got low {low.tolist()}, high {high.tolist()}")
        self.obs_size, self.action_size = obs_size, len(low)
        self.net = MLP(obs_size, self.action_size, cfg, cfg.output_gain)
        self.register_buffer("offset", (high + low) / 2)
        self.register_buffer("scale", (high - low) / 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions float32 [B, action_size] for observations [B, obs_size]."""
        return self.offset + self.scale * torch.tanh(self.net(obs))


class QNetwork(nn.Module):
    """Centralised Q(state, joint action): an MLP on the state and every agent's action, concatenated."""

    def __init__(self, state_size: int, joint_action_size: int, cfg: ModelConfig):
        super().__init__()
        self.net = MLP(state_size + joint_action_size, 1, cfg, out_gain=1.0)

    def forward(self, state: torch.Tensor, actions: list[torch.Tensor]) -> torch.Tensor:
        """Q [B] of states [B, state_size] and the agents' actions, per agent [B, action_size]."""
        return self.net(torch.cat([state, *actions], dim=-1)).squeeze(-1)


def masked_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The mean of values [B]; with 0/1 weights [B] (1 for the rows of active agents, 0 for
    inactive ones) the mean over the rows that count, 0 when none does."""
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def masked_log_softmax(logits: torch.Tensor, action_mask: torch.Tensor | None) -> torch.Tensor:
    # The most negative finite float (not -inf) keeps KL and gradients free of NaN:
    # a masked choice gets probability exactly 0 all the same.
    if action_mask is not None:
        logits = logits.masked_fill(~action_mask, torch.finfo(logits.dtype).min)
    return torch.log_softmax(logits, dim=-1)


class Critic(nn.Module):
    """Centralised V(state), in the units of the value normaliser when one is used."""

    def __init__(self, state_size: int, cfg: ModelConfig):
        super().__init__()
        self.net = MLP(state_size, 1, cfg, out_gain=1.0)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).squeeze(-1)


class ValueNormalizer(nn.Module):
    """Running mean and variance of the returns (exact over everything seen, in float64).

    Its statistics are buffers, so they travel in `state_dict` with the checkpoint.
    """

    # Updated once per iteration with all its returns (the critic update reads this).
    per_minibatch = False


    def __init__(self, epsilon: float = 1e-5):
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("var", torch.ones((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double().flatten()
        n, mean, var = x.numel(), x.mean(), x.var(unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        m2 = self.var * self.count + var * n + delta.square() * self.count * n / total
        self.mean.add_(delta * n / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def std(self) -> torch.Tensor:
        return (self.var + self.epsilon).sqrt()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std()).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.std() + self.mean).to(x.dtype)


class MovingAverageNormalizer(nn.Module):
    """The authors' value normaliser: debiased exponential moving averages of the returns and
    of their squares (decay `beta`), the variance floored at `min_var`; updated with every
    critic minibatch's returns. Same interface as `ValueNormalizer`.
    """

    per_minibatch = True

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5, min_var: float = 1e-2):
        super().__init__()
        self.beta, self.epsilon, self.min_var = beta, epsilon, min_var
        self.register_buffer("running_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros((), dtype=torch.float64))
        self.register_buffer("debiasing_term", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double().flatten()
        for buffer, value in ((self.running_mean, x.mean()), (self.running_mean_sq, x.square().mean()), (self.debiasing_term, 1.0)):
            buffer.mul_(self.beta).add_((1 - self.beta) * value)

    def _mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / weight
        return mean, (self.running_mean_sq / weight - mean.square()).clamp(min=self.min_var)

    def std(self) -> torch.Tensor:
        return self._mean_var()[1].sqrt()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return ((x - mean) / var.sqrt()).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._mean_var()
        return (x * var.sqrt() + mean).to(x.dtype)
