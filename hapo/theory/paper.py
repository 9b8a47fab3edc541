"""The two worked examples of the paper: Proposition 1 and Figure 1.

Proposition 1 (parameter sharing can be exponentially bad). n agents (n even), one
state, actions {0, 1} each; the reward is 1 when the first n/2 agents play 0 and the
last n/2 play 1, or the first n/2 play 1 and the last n/2 play 0, and 0 otherwise. The
optimum is 1 (a deterministic joint action). If all agents share one policy
P(play 1) = p, the return is 2 (p (1 - p))^(n/2), at most 2 / 2^n (at p = 1/2).

Figure 1 (simultaneous trust-region steps can fail). Two agents with unit-variance
Gaussian policies N(mu_i, 1) and reward r = a1 * a2, so J = mu1 * mu2. Starting from
mu = (-0.25, 0.25) with a KL radius delta = 0.5 per agent: KL(N(m, 1) || N(m', 1)) =
(m - m')^2 / 2, so each agent may move its mean by at most sqrt(2 delta) = 1. Each
agent's surrogate (its advantage averaged over the other's current policy) is linear in
its own mean, so its trust-region step goes to the edge of the region.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from hapo.theory.game import MarkovGame, evaluate


def _check_even(n_agents: int) -> None:
    if not (isinstance(n_agents, int) and n_agents >= 2 and n_agents % 2 == 0):
        raise ValueError(f"n_agents must be an even integer >= 2, got {n_agents!r}")


def half_split_game(n_agents: int) -> MarkovGame:
    """Proposition 1's one-state game as a MarkovGame with gamma = 0 (so J = expected reward)."""
    _check_even(n_agents)
    half = n_agents // 2
    rewards = np.zeros((1,) + (2,) * n_agents)
    rewards[(0,) + (0,) * half + (1,) * half] = 1.0
    rewards[(0,) + (1,) * half + (0,) * half] = 1.0
    return MarkovGame(
        transitions=np.ones(rewards.shape + (1,)),
        rewards=rewards,
        gamma=0.0,
        initial=np.ones(1),
    )


def shared_policy_return(n_agents: int, p_one: float) -> float:
    """Exact J when every agent plays 1 with probability p_one (evaluated on the game)."""
    if not 0.0 <= p_one <= 1.0:
        raise ValueError(f"p_one must be in [0, 1], got {p_one}")
    game = half_split_game(n_agents)
    policy = np.array([[1.0 - p_one, p_one]])
    return evaluate(game, (policy,) * n_agents).j


def best_joint_return(n_agents: int) -> float:
    """The optimum over all (separate) policies: the best deterministic joint action."""
    return float(half_split_game(n_agents).rewards.max())


@dataclass(frozen=True)
class SharedOptimum:
    p_one: float
    j: float
    bound: float  # the closed form 2 / 2^n


def best_shared_policy(n_agents: int) -> SharedOptimum:
    """Maximise J over the one shared policy numerically (bounded scalar search)."""
    result = minimize_scalar(
        lambda p: -shared_policy_return(n_agents, p), bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-10}
    )
    if not result.success:
        raise RuntimeError(f"shared-policy search failed for n={n_agents}: {result.message}")
    return SharedOptimum(p_one=float(result.x), j=-float(result.fun), bound=2.0 / 2**n_agents)


def gaussian_kl(mean_p: float, mean_q: float) -> float:
    """KL(N(mean_p, 1) || N(mean_q, 1)) = (mean_p - mean_q)^2 / 2."""
    return 0.5 * (mean_p - mean_q) ** 2


def product_return(means: tuple[float, float]) -> float:
    """J = E[a1 * a2] = mu1 * mu2 for independent Gaussians."""
    return means[0] * means[1]


def trust_region_step(means: tuple[float, float], agent: int, radius: float) -> float:
    """Agent's new mean: argmax of its surrogate (x - mu_i) * mu_other under KL <= radius."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if agent not in (0, 1):
        raise ValueError(f"agent must be 0 or 1, got {agent}")
    return means[agent] + float(np.sign(means[1 - agent])) * np.sqrt(2 * radius)


@dataclass(frozen=True)
class Figure1:
    radius: float
    initial: tuple[float, float]
    simultaneous: tuple[float, float]
    sequential: dict[tuple[int, int], tuple[float, float]]  # update order -> means

    @property
    def initial_return(self) -> float:
        return product_return(self.initial)

    @property
    def simultaneous_return(self) -> float:
        return product_return(self.simultaneous)

    def sequential_return(self, order: tuple[int, int]) -> float:
        return product_return(self.sequential[order])


def figure1(initial: tuple[float, float] = (-0.25, 0.25), radius: float = 0.5) -> Figure1:
    """Simultaneous (independent) and sequential trust-region steps from `initial`."""
    simultaneous = (trust_region_step(initial, 0, radius), trust_region_step(initial, 1, radius))
    sequential = {}
    for order in itertools.permutations((0, 1)):
        means = list(initial)
        for agent in order:
            means[agent] = trust_region_step((means[0], means[1]), agent, radius)
        sequential[order] = (means[0], means[1])
    return Figure1(radius=radius, initial=initial, simultaneous=simultaneous, sequential=sequential)
