"""Finite cooperative Markov games and exact evaluation of tabular joint policies.

Shapes: S states, n agents, agent i has k_i actions. A joint action is one index per
agent, so joint tensors carry one axis per agent after the state axis:

- transitions: (S, k_1, ..., k_n, S), rows sum to 1
- rewards: (S, k_1, ..., k_n), the shared team reward
- a policy of agent i: (S, k_i), rows sum to 1
- Q and the joint advantage: (S, k_1, ..., k_n)

The return is J(pi) = E[sum_t gamma^t r_t] with s_0 ~ initial, and the discounted state
distribution is the improper rho_pi(s) = sum_t gamma^t Pr(s_t = s), as in the paper
(it sums to 1 / (1 - gamma)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import rel_entr

_STOCHASTIC_ATOL = 1e-9

Policies = tuple[np.ndarray, ...]


def _check_distribution(name: str, value: np.ndarray, axis: int = -1) -> None:
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got non-finite entries")
    if np.any(value < 0):
        raise ValueError(f"{name} must be non-negative, got minimum {value.min()}")
    sums = value.sum(axis=axis)
    worst = np.abs(sums - 1).max()
    if worst > _STOCHASTIC_ATOL:
        raise ValueError(f"{name} must sum to 1 along its last axis, got a sum off by {worst:.3g}")


@dataclass(frozen=True)
class MarkovGame:
    """A cooperative Markov game with finite states and per-agent finite action sets.

    Attributes:
        transitions: (S, k_1, ..., k_n, S) next-state probabilities.
        rewards: (S, k_1, ..., k_n) shared reward.
        gamma: discount factor in [0, 1).
        initial: (S,) initial state distribution.
    """

    transitions: np.ndarray
    rewards: np.ndarray
    gamma: float
    initial: np.ndarray

    def __post_init__(self) -> None:
        transitions = np.asarray(self.transitions, dtype=np.float64)
        rewards = np.asarray(self.rewards, dtype=np.float64)
        initial = np.asarray(self.initial, dtype=np.float64)
        if transitions.ndim < 3:
            raise ValueError(
                f"transitions must have shape (S, k_1, ..., k_n, S) with n >= 1, got {transitions.shape}"
            )
        n_states = transitions.shape[0]
        if transitions.shape[-1] != n_states:
            raise ValueError(
                f"transitions must end with the {n_states} next states, got shape {transitions.shape}"
            )
        if rewards.shape != transitions.shape[:-1]:
            raise ValueError(f"rewards must have shape {transitions.shape[:-1]}, got {rewards.shape}")
        if not np.all(np.isfinite(rewards)):
            raise ValueError("rewards must be finite")
        if initial.shape != (n_states,):
            raise ValueError(f"initial must have shape ({n_states},), got {initial.shape}")
        _check_distribution("transitions", transitions)
        _check_distribution("initial", initial)
        if not 0.0 <= float(self.gamma) < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        object.__setattr__(self, "transitions", transitions)
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "gamma", float(self.gamma))

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_agents(self) -> int:
        return self.rewards.ndim - 1

    @property
    def n_actions(self) -> tuple[int, ...]:
        return self.rewards.shape[1:]

    def check_policies(self, policies: Sequence[np.ndarray]) -> Policies:
        """Validate one (S, k_i) table per agent; returns them as a tuple of float64 arrays."""
        if len(policies) != self.n_agents:
            raise ValueError(f"expected {self.n_agents} agent policies, got {len(policies)}")
        checked = []
        for i, (policy, k) in enumerate(zip(policies, self.n_actions)):
            policy = np.asarray(policy, dtype=np.float64)
            if policy.shape != (self.n_states, k):
                raise ValueError(f"policy of agent {i} must have shape ({self.n_states}, {k}), got {policy.shape}")
            _check_distribution(f"policy of agent {i}", policy)
            checked.append(policy)
        return tuple(checked)


def random_game(
    rng: np.random.Generator, n_states: int, n_actions: Sequence[int], gamma: float
) -> MarkovGame:
    """Dense random game: Dirichlet(1) transitions and initial state, rewards uniform in [0, 1)."""
    joint = (n_states, *n_actions)
    return MarkovGame(
        transitions=rng.dirichlet(np.ones(n_states), size=joint),
        rewards=rng.random(joint),
        gamma=gamma,
        initial=rng.dirichlet(np.ones(n_states)),
    )


def random_policies(rng: np.random.Generator, game: MarkovGame) -> Policies:
    """One Dirichlet(1) distribution per state and agent (full support almost surely)."""
    return tuple(rng.dirichlet(np.ones(k), size=game.n_states) for k in game.n_actions)


def uniform_policies(game: MarkovGame) -> Policies:
    return tuple(np.full((game.n_states, k), 1.0 / k) for k in game.n_actions)


def expect_over(table: np.ndarray, policies: Sequence[np.ndarray], over: Sequence[int], keep: Sequence[int]) -> np.ndarray:
    """Contract a joint table (S, k_1, ..., k_n, ...) with the policies of agents `over`.

    Agents in `keep` stay, in the order given; trailing axes after the n agent axes
    (such as next states) stay last. Every agent must appear in exactly one of the two.
    Returns (S, k_keep[0], ..., k_keep[-1], ...).
    """
    n = len(policies)
    if sorted([*over, *keep]) != list(range(n)):
        raise ValueError(f"agents {list(over)} and {list(keep)} must partition range({n})")
    trailing = list(range(n + 1, table.ndim))
    operands: list[object] = [table, [0, *range(1, n + 1), *trailing]]
    for agent in over:
        operands += [policies[agent], [0, agent + 1]]
    return np.einsum(*operands, [0, *(agent + 1 for agent in keep), *trailing], optimize=True)


def joint_probabilities(policies: Sequence[np.ndarray]) -> np.ndarray:
    """pi(a | s) = prod_i pi^i(a^i | s), shape (S, k_1, ..., k_n)."""
    n = len(policies)
    operands: list[object] = []
    for agent, policy in enumerate(policies):
        operands += [policy, [0, agent + 1]]
    return np.einsum(*operands, list(range(n + 1)))


@dataclass(frozen=True)
class Evaluation:
    """Exact quantities of a joint policy (see the module docstring for shapes)."""

    v: np.ndarray
    q: np.ndarray
    advantage: np.ndarray
    j: float
    state_distribution: np.ndarray


def evaluate(game: MarkovGame, policies: Sequence[np.ndarray]) -> Evaluation:
    """V, Q, A, J and rho_pi of a joint policy, by two linear solves with (I - gamma P_pi)."""
    policies = game.check_policies(policies)
    all_agents = range(game.n_agents)
    p_pi = expect_over(game.transitions, policies, over=all_agents, keep=())
    r_pi = expect_over(game.rewards, policies, over=all_agents, keep=())
    system = np.eye(game.n_states) - game.gamma * p_pi
    v = np.linalg.solve(system, r_pi)
    q = game.rewards + game.gamma * game.transitions @ v
    state_distribution = np.linalg.solve(system.T, game.initial)
    return Evaluation(
        v=v,
        q=q,
        advantage=q - v.reshape(-1, *(1,) * game.n_agents),
        j=float(game.initial @ v),
        state_distribution=state_distribution,
    )


def marginal_q(q: np.ndarray, policies: Sequence[np.ndarray], agents: Sequence[int]) -> np.ndarray:
    """Q^{i_1:m}(s, a^{i_1:m}): Q averaged over the other agents' actions under their policies.

    Returns (S, k_{i_1}, ..., k_{i_m}) with the agent axes in the order of `agents`;
    with no agents this is V.
    """
    others = [i for i in range(len(policies)) if i not in agents]
    return expect_over(q, policies, over=others, keep=agents)


def local_advantage(q: np.ndarray, policies: Sequence[np.ndarray], order: Sequence[int], m: int) -> np.ndarray:
    """A^{i_m}(s, a^{i_1:m-1}, a^{i_m}) = Q^{i_1:m} - Q^{i_1:m-1}, for m = 1..len(order).

    Returns (S, k_{i_1}, ..., k_{i_m}).
    """
    if not 1 <= m <= len(order):
        raise ValueError(f"m must be in 1..{len(order)}, got {m}")
    with_agent = marginal_q(q, policies, order[:m])
    without = marginal_q(q, policies, order[: m - 1])
    return with_agent - without[..., np.newaxis]


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-state KL(p(.|s) || q(.|s)) of two (S, k) tables; 0 log 0 = 0, inf where q = 0 < p."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"policies must have the same shape, got {p.shape} and {q.shape}")
    return rel_entr(p, q).sum(axis=-1)


def max_kl(p: np.ndarray, q: np.ndarray) -> float:
    """D_KL^max(p, q) = max_s KL(p(.|s) || q(.|s))."""
    return float(kl(p, q).max())
