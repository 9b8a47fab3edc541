"""Acting for all agents at once: one batched forward per group of same-shaped actors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from hapo.models.networks import ACTIVATIONS, Actor, DeterministicActor


@dataclass
class _Stack:
    """The weights of a group of G same-shaped actors, stacked along a leading G axis."""

    agents: list[int]
    weights: list[torch.Tensor]  # [G, in, out] per layer (transposed for baddbmm)
    biases: list[torch.Tensor]  # [G, 1, out]
    norm: tuple[torch.Tensor, torch.Tensor, float] | None  # input LayerNorm weight, bias [G, 1, in], eps
    hidden_norms: list[tuple[torch.Tensor, torch.Tensor, float]] | None  # after each hidden activation
    log_std: torch.Tensor | None  # [G, 1, action_size] (Gaussian actors)
    bounds: tuple[torch.Tensor, torch.Tensor] | None  # offset, scale [G, 1, action_size] (deterministic actors)
    kind: str
    activation: str


class JointPolicy:
    """All agents' policies, acting together.

    Actors (`Actor`, or the off-policy algorithms' `DeterministicActor`) whose observation
    size, action size and action kind match are stacked and
    evaluated by batched matrix products (`torch.baddbmm`), one call per layer for the
    whole group, instead of one forward per agent. The stacked weights are copies taken
    at construction and by `refresh()`: a `JointPolicy` acts with the weights it last saw.
    """

    def __init__(self, actors: Sequence[Actor | DeterministicActor]):
        self.actors = list(actors)
        groups: dict[tuple[int, int, str], list[int]] = {}
        for i, actor in enumerate(self.actors):
            groups.setdefault((actor.obs_size, actor.action_size, actor.kind), []).append(i)
        self.groups = list(groups.values())
        self.refresh()

    @property
    def num_agents(self) -> int:
        return len(self.actors)

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the actors' current weights into the stacks (after a training update)."""
        self._stacks = [self._stack(agents) for agents in self.groups]

    def _stack(self, agents: list[int]) -> _Stack:
        nets = [self.actors[i].net for i in agents]
        depth = len(nets[0].layers)
        weights = [torch.stack([n.layers[k].weight for n in nets]).transpose(1, 2).contiguous() for k in range(depth)]
        biases = [torch.stack([n.layers[k].bias for n in nets]).unsqueeze(1) for k in range(depth)]
        norm = None if nets[0].norm is None else _stack_norms([n.norm for n in nets])
        hidden_norms = None
        if nets[0].hidden_norms is not None:
            hidden_norms = [_stack_norms([n.hidden_norms[k] for n in nets]) for k in range(depth - 1)]
        first = self.actors[agents[0]]
        log_std = bounds = None
        if first.kind == "continuous":
            log_std = torch.stack([self.actors[i].current_log_std() for i in agents]).unsqueeze(1)
        if first.kind == "deterministic":
            offset = torch.stack([self.actors[i].offset for i in agents]).unsqueeze(1)
            bounds = (offset, torch.stack([self.actors[i].scale for i in agents]).unsqueeze(1))
        return _Stack(agents, weights, biases, norm, hidden_norms, log_std, bounds, first.kind, nets[0].activation_name)

    @torch.no_grad()
    def act(
        self,
        obs: Sequence[torch.Tensor | np.ndarray],
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        action_masks: Sequence[torch.Tensor | np.ndarray] | None = None,
    ) -> list[torch.Tensor]:
        """Actions of every agent for a batch of observations.

        Args:
          obs: per agent, float32 [B, obs_size].
          deterministic: the Gaussian mean / the most probable choice instead of a sample
            (deterministic actors have no distribution: they need deterministic=True).
          generator: the torch RNG to sample from (default: torch's global one).
          action_masks: per agent, bool [B, choices] of available choices (discrete only).

        Returns:
          per agent, float32 [B, action_size] (unclipped Gaussian samples, or a deterministic
          actor's action) or int64 [B].
        """
        if not deterministic and any(a.kind == "deterministic" for a in self.actors):
            raise ValueError("deterministic actors (the off-policy algorithms') have no distribution to sample from: act with deterministic=True")
        obs = self._checked(obs, "obs", [a.obs_size for a in self.actors], torch.float32)
        if action_masks is not None:
            action_masks = self._checked(action_masks, "action_masks", [a.action_size for a in self.actors], torch.bool)
        actions: list[torch.Tensor] = [torch.empty(0)] * self.num_agents
        for stack in self._stacks:
            out = self._forward(stack, torch.stack([obs[i] for i in stack.agents]))
            if stack.kind == "deterministic":
                offset, scale = stack.bounds
                chosen = offset + scale * torch.tanh(out)
            elif stack.kind == "continuous":
                if not deterministic:
                    noise = torch.randn(out.shape, generator=generator)
                    out = out + stack.log_std.exp() * noise
                chosen = out
            else:
                if action_masks is not None:
                    mask = torch.stack([action_masks[i] for i in stack.agents])
                    out = out.masked_fill(~mask, torch.finfo(out.dtype).min)
                if not deterministic:
                    # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits).
                    uniform = torch.rand(out.shape, generator=generator)
                    out = out - torch.log(-torch.log(uniform))
                chosen = out.argmax(dim=-1)
            for j, agent in enumerate(stack.agents):
                actions[agent] = chosen[j]
        return actions

    @staticmethod
    def _forward(stack: _Stack, x: torch.Tensor) -> torch.Tensor:
        if stack.norm is not None:
            x = _layer_norm(x, stack.norm)
        activation = ACTIVATIONS[stack.activation]
        for k, (w, b) in enumerate(zip(stack.weights, stack.biases)):
            x = torch.baddbmm(b, x, w)
            if k < len(stack.weights) - 1:
                x = activation(x)
                if stack.hidden_norms is not None:
                    x = _layer_norm(x, stack.hidden_norms[k])
        return x

    def _checked(self, arrays, name: str, sizes: list[int], dtype: torch.dtype) -> list[torch.Tensor]:
        if len(arrays) != self.num_agents:
            raise ValueError(f"{name} must hold one array per agent ({self.num_agents}), got {len(arrays)}")
        tensors = []
        for i, (x, size) in enumerate(zip(arrays, sizes)):
            t = torch.as_tensor(x)
            if t.dtype != dtype:
                raise TypeError(f"{name}[{i}] must have dtype {dtype}, got {t.dtype}")
            if t.ndim != 2 or t.shape[1] != size or t.shape[0] != torch.as_tensor(arrays[0]).shape[0]:
                raise ValueError(f"{name}[{i}] must have shape [B, {size}] with one B for all agents, got {tuple(t.shape)}")
            tensors.append(t)
        return tensors


def _stack_norms(norms: list[torch.nn.LayerNorm]) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(weight, bias) [G, 1, size] and eps of a group's LayerNorms."""
    return torch.stack([n.weight for n in norms]).unsqueeze(1), torch.stack([n.bias for n in norms]).unsqueeze(1), norms[0].eps


def _layer_norm(x: torch.Tensor, norm: tuple[torch.Tensor, torch.Tensor, float]) -> torch.Tensor:
    weight, bias, eps = norm
    return F.layer_norm(x, x.shape[-1:], eps=eps) * weight + bias
