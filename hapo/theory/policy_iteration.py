"""The paper's Algorithm 1 (exact multi-agent policy iteration with a max-KL penalty),
its per-agent step, and exact best responses for checking Nash equilibria.

Per-agent step. Agent i_m, with the agents before it already updated, maximises over its
tabular policy x

    F(x) = sum_s rho(s) sum_a x(a|s) g(s, a) - C * max_s KL(p(.|s) || x(.|s))

where p is its old policy, rho the (improper) discounted state distribution of the old
joint policy and g(s, a) = E_{a^{i_1:m-1} ~ pi_new}[A^{i_m}_{pi_old}(s, a^{i_1:m-1}, a)].
F is concave. Writing max_s KL = max over weights w on the simplex of sum_s w_s KL_s, the
optimality conditions are: every state where g is not constant sits on the same KL level
t, with multipliers lambda_s >= 0 such that sum_s rho_s lambda_s = C, and in such a state

    x(a|s) = lambda_s p(a|s) / (nu_s - g(s, a)),   nu_s > max_a g(s, a),

which maximises g.x - lambda_s KL(p || x) on the simplex. With z_s = nu_s - max_a g(s, a)
everything is a function of z_s: lambda_s = 1 / sum_a p(a|s) / (z_s + d_s(a)) where
d_s(a) = max g - g(s, a), and KL_s(z_s) decreases from infinity to 0 as z_s grows. So the
step is two nested monotone scalar equations, solved by safeguarded Newton in log
coordinates (Newton inside a bracket, bisection otherwise): inner, per state, KL_s(z_s) = t;
outer, sum_s rho_s lambda_s(t) = C. States where g is constant (or rho is 0) keep p.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hapo.theory.game import MarkovGame, Policies, evaluate, expect_over, local_advantage

_SERIES_DELTA = 1e-3
_NEAR_DELTA = 0.5
_MAX_NEWTON_ITERATIONS = 200
_FALLBACK_LOG_STEP = 4.0
# z = nu - max g is kept above e^-700 (x within ~1e-300 of deterministic), short of underflow
_MIN_LOG_Z = -700.0
# a solved state's log KL must match log t this closely; the solver aims at 1e-12
_LEVEL_CHECK = 1e-8


def _decreasing_root(
    fun: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    u: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    ftol: float,
) -> np.ndarray:
    """Elementwise root of decreasing functions f(u) = 0 known to lie in [lo, hi].

    fun returns (f, df/du). Newton steps that leave the current bracket (or are not
    finite) are replaced by bisection, or by a fixed step in log coordinates while the
    bracket is still open on one side (lo may be -inf, hi may be +inf).
    """
    lo = np.array(lo, dtype=np.float64)
    hi = np.array(hi, dtype=np.float64)
    u = np.clip(u, lo, hi)
    for _ in range(_MAX_NEWTON_ITERATIONS):
        f, df = fun(u)
        with np.errstate(invalid="ignore", divide="ignore"):
            newton = u - f / df
        scale = 1.0 + np.abs(u)
        converged = (np.abs(f) <= ftol) | (np.abs(newton - u) <= 4 * np.finfo(float).eps * scale)
        lo = np.where(f > 0, u, lo)
        hi = np.where(f < 0, u, hi)
        converged |= hi - lo <= 4 * np.finfo(float).eps * scale
        if np.all(converged):
            return u
        inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
        with np.errstate(invalid="ignore"):
            bisect = np.where(
                np.isfinite(lo) & np.isfinite(hi),
                (lo + hi) / 2,
                np.where(np.isfinite(lo), lo + _FALLBACK_LOG_STEP, hi - _FALLBACK_LOG_STEP),
            )
        u = np.where(converged, u, np.where(inside, newton, bisect))
    raise RuntimeError(
        f"penalised step: Newton did not converge in {_MAX_NEWTON_ITERATIONS} iterations "
        f"(worst residual {np.abs(f).max():.3g}, tolerance {ftol:.3g})"
    )


@dataclass(frozen=True)
class _StateFamily:
    """The per-state maximisers x(z) of the states that move, as functions of u = log z.

    With w(a) = z / (z + d(a)) in (0, 1] and s = sum_a p(a) w(a): x(a) = p(a) w(a) / s and
    lambda = z / s. log w = u - logaddexp(u, log d) stays finite for any z.
    """

    p: np.ndarray  # (A, k)
    d: np.ndarray  # (A, k), max g - g >= 0

    def at(self, log_z: np.ndarray) -> dict[str, np.ndarray]:
        u = log_z[:, None]
        with np.errstate(divide="ignore"):
            log_w = u - np.logaddexp(u, np.log(self.d))
        w = np.exp(log_w)
        s = (self.p * w).sum(axis=1)
        log_ratio = log_w - np.log(s)[:, None]
        ratio = np.exp(log_ratio)
        mean_d = (self.p * w * self.d).sum(axis=1) / s
        # x / p - 1 = (w / z) (mean_d - d): no cancellation when z is large and x ~ p
        delta = np.exp(log_w - u) * (mean_d[:, None] - self.d)
        # KL = sum_a p (r - 1 - log r), r = x / p = 1 + delta, each form where it does not cancel
        series = delta**2 * (1 / 2 - delta * (1 / 3 - delta * (1 / 4 - delta * (1 / 5 - delta / 6))))
        with np.errstate(invalid="ignore", divide="ignore"):
            near = delta - np.log1p(delta)
        kl_terms = np.where(
            np.abs(delta) < _SERIES_DELTA,
            series,
            np.where(np.abs(delta) < _NEAR_DELTA, near, ratio - 1 - log_ratio),
        )
        z = np.exp(log_z)
        return dict(
            ratio=ratio,
            kl=(self.p * kl_terms).sum(axis=1),
            dkl_du=-(self.p * w * delta).sum(axis=1),
            lam=z / s,
            dlam_du=z * (self.p * w**2).sum(axis=1) / s**2,
        )


@dataclass(frozen=True)
class PenalisedStep:
    """Result of one agent's step of Algorithm 1.

    Attributes:
        policy: (S, k) the maximiser x.
        surrogate: sum_s rho(s) sum_a x(a|s) g(s, a), the paper's L^{i_1:m}.
        max_kl: max_s KL(p || x).
        objective: surrogate - C * max_kl (0 at x = p, so never below 0 at the maximiser).
    """

    policy: np.ndarray
    surrogate: float
    max_kl: float
    objective: float


def penalised_step(
    weights: np.ndarray, gains: np.ndarray, old_policy: np.ndarray, penalty: float, tol: float = 1e-12
) -> PenalisedStep:
    """argmax_x sum_s weights(s) x(.|s).gains(s, .) - penalty * max_s KL(old_policy(.|s) || x(.|s)).

    Args:
        weights: (S,) non-negative state weights (the discounted state distribution).
        gains: (S, k) the expected local advantage of each own action.
        old_policy: (S, k). The maximum is taken over policies x with the support of
            old_policy: actions it gives probability 0 keep probability 0. (Algorithm 1's
            iterates have full support in exact arithmetic; a zero there is an underflow.)
        penalty: C > 0.
        tol: residual tolerance of both scalar equations, in log units (relative).
    """
    weights = np.asarray(weights, dtype=np.float64)
    gains = np.asarray(gains, dtype=np.float64)
    old_policy = np.asarray(old_policy, dtype=np.float64)
    if gains.ndim != 2 or old_policy.shape != gains.shape or weights.shape != gains.shape[:1]:
        raise ValueError(
            f"expected weights (S,), gains (S, k), old_policy (S, k); got {weights.shape}, {gains.shape}, {old_policy.shape}"
        )
    if not (np.all(np.isfinite(gains)) and np.all(np.isfinite(weights)) and np.all(weights >= 0)):
        raise ValueError("weights must be finite and non-negative and gains finite")
    if not (np.isfinite(penalty) and penalty > 0):
        raise ValueError(f"penalty must be a positive finite number, got {penalty}")

    if np.any(old_policy < 0):
        raise ValueError(f"old_policy must be non-negative, got minimum {old_policy.min()}")
    support = old_policy > 0
    best_on_support = np.where(support, gains, -np.inf).max(axis=1, keepdims=True)
    d = np.where(support, best_on_support - gains, 0.0)
    moving = (weights > 0) & (d.max(axis=1) > 0)
    policy = old_policy.copy()
    if np.any(moving):
        family = _StateFamily(p=old_policy[moving], d=d[moving])
        rho = weights[moving]
        d_max = family.d.max(axis=1)
        mass_on_best = np.where(family.d == 0, family.p, 0.0).sum(axis=1)
        smallest_gap = np.where(family.d > 0, family.d, np.inf).min(axis=1)
        mean = (family.p * family.d).sum(axis=1)
        spread = np.sqrt((family.p * (family.d - mean[:, None]) ** 2).sum(axis=1) / 2)
        # Staying put is feasible, so C t <= F(t*) - F(0) + C t <= sum_s rho_s mean_s.
        log_t_max = np.log((rho * mean).sum() / penalty)
        # Second-order guess: x - p ~ p (g - mean g) / lambda gives KL ~ spread^2 / lambda^2.
        log_t = np.minimum(np.array([2 * np.log((rho * spread).sum() / penalty)]), log_t_max)
        log_z = np.log(np.maximum(spread * np.exp(-log_t / 2) - mean, np.exp(_MIN_LOG_Z)))

        def inner_at(log_z: np.ndarray, log_t: float, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            values = _StateFamily(p=family.p[states], d=family.d[states]).at(log_z)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log(values["kl"]) - log_t, values["dkl_du"] / values["kl"]

        # A state whose KL stays below t even at z = e^_MIN_LOG_Z (its mass off the best actions
        # is below about t / 700) takes that z: the exact root is smaller still, and both remove
        # all but a factor of about e^-700 of that mass, so x agrees to within ~1e-300.
        kl_at_min_z = family.at(np.full(len(rho), _MIN_LOG_Z))["kl"]

        def solve_inner(log_t: float) -> np.ndarray:
            # KL <= 4 d_max^2 / z^2 once z >= 2 d_max, and KL >= (1 - P*) log(d_gap / z) + log P*
            # with P* the old mass on the best actions and d_gap the smallest positive d
            hi = np.log(2 * d_max) + max(0.0, -log_t / 2)
            with np.errstate(divide="ignore"):
                lo = np.log(smallest_gap) - (np.exp(log_t) - np.log(mass_on_best)) / (1 - mass_on_best)
            saturated = kl_at_min_z <= np.exp(log_t)
            solved = np.full(len(rho), _MIN_LOG_Z)
            if not np.all(saturated):
                free = ~saturated
                solved[free] = _decreasing_root(
                    lambda u: inner_at(u, log_t, free), log_z[free], np.maximum(lo[free], _MIN_LOG_Z), hi[free], tol
                )
            return solved

        def outer(log_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            nonlocal log_z
            log_z = solve_inner(log_t[0])
            values = family.at(log_z)
            total = (rho * values["lam"]).sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                dtotal = (rho * values["dlam_du"] * values["kl"] / values["dkl_du"]).sum()
            return np.array([np.log(total / penalty)]), np.array([dtotal / total])

        # the last outer evaluation was at the returned root, so log_z already solves its inner problem
        log_t = _decreasing_root(outer, log_t, np.array([-np.inf]), np.array([log_t_max]), tol)
        solution = family.at(log_z)
        level = np.log(solution["kl"]) - log_t[0]
        off_level = (np.abs(level) > _LEVEL_CHECK) & ((log_z > _MIN_LOG_Z) | (level > 0))
        if np.any(off_level):
            raise RuntimeError(
                f"penalised step: states {np.flatnonzero(moving)[off_level].tolist()} ended off the common KL level "
                f"(log KL - log t = {level[off_level].tolist()})"
            )
        moved = family.p * solution["ratio"]
        policy[moving] = moved / moved.sum(axis=1, keepdims=True)
        # the solver's KL is that of the exact maximiser, before x is rounded (tiny entries may underflow)
        distance = float(solution["kl"].max())
    else:
        distance = 0.0
    surrogate = float((weights * (policy * gains).sum(axis=1)).sum())
    return PenalisedStep(policy=policy, surrogate=surrogate, max_kl=distance, objective=surrogate - penalty * distance)


def penalty_coefficient(gamma: float, advantage: np.ndarray) -> float:
    """C = 4 gamma max_{s,a} |A(s, a)| / (1 - gamma)^2 (the TRPO bound the paper builds on)."""
    return 4 * gamma * float(np.abs(advantage).max()) / (1 - gamma) ** 2


def _expected_over_prefix(local: np.ndarray, prefix_policies: Sequence[np.ndarray]) -> np.ndarray:
    """Average A^{i_m}(s, a^{i_1:m-1}, a^{i_m}) over a^{i_1:m-1} ~ prefix policies -> (S, k_{i_m})."""
    m = len(prefix_policies) + 1
    operands: list[object] = [local, list(range(m + 1))]
    for j, policy in enumerate(prefix_policies):
        operands += [policy, [0, j + 1]]
    return np.einsum(*operands, [0, m])


@dataclass(frozen=True)
class Iteration:
    """One iteration of Algorithm 1: the order drawn, the penalty, and each agent's step."""

    order: tuple[int, ...]
    penalty: float
    j_before: float
    j_after: float
    steps: tuple[PenalisedStep, ...]  # in update order


def algorithm1_iteration(game: MarkovGame, policies: Sequence[np.ndarray], order: Sequence[int]) -> tuple[Policies, Iteration]:
    """One iteration of Algorithm 1 with the given agent order; returns the new policies."""
    if game.gamma == 0:
        raise ValueError("Algorithm 1 needs gamma > 0: with gamma = 0 the penalty C is 0 and the step is unbounded")
    policies = game.check_policies(policies)
    if sorted(order) != list(range(game.n_agents)):
        raise ValueError(f"order must be a permutation of range({game.n_agents}), got {list(order)}")
    old = evaluate(game, policies)
    penalty = penalty_coefficient(game.gamma, old.advantage)
    new = list(policies)
    steps = []
    for m, agent in enumerate(order, start=1):
        if penalty == 0:
            break
        local = local_advantage(old.q, policies, order, m)
        gains = _expected_over_prefix(local, [new[i] for i in order[: m - 1]])
        step = penalised_step(old.state_distribution, gains, policies[agent], penalty)
        new[agent] = step.policy
        steps.append(step)
    new_policies = tuple(new)
    record = Iteration(
        order=tuple(int(i) for i in order),
        penalty=penalty,
        j_before=old.j,
        j_after=evaluate(game, new_policies).j,
        steps=tuple(steps),
    )
    return new_policies, record


def algorithm1(
    game: MarkovGame,
    policies: Sequence[np.ndarray],
    rng: np.random.Generator,
    iterations: int,
    stop_below: float = 0.0,
) -> tuple[Policies, list[Iteration]]:
    """Run Algorithm 1 with a fresh random permutation each iteration.

    Stops after `iterations`, or earlier once an iteration improves J by at most
    `stop_below` (with the default 0.0, only when it stops improving at all).
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    history = []
    for _ in range(iterations):
        policies, record = algorithm1_iteration(game, policies, rng.permutation(game.n_agents))
        history.append(record)
        if record.j_after - record.j_before <= stop_below:
            break
    return tuple(policies), history


@dataclass(frozen=True)
class BestResponse:
    policy: np.ndarray  # (S, k_i), deterministic
    j: float


def best_response(game: MarkovGame, policies: Sequence[np.ndarray], agent: int, tol: float = 1e-12) -> BestResponse:
    """Exact best response of one agent to the others' fixed policies, by policy iteration.

    With the others fixed, the agent faces an MDP whose transitions and rewards are the
    game's averaged over the others' actions. An action is switched only when it beats
    the current one by more than tol * (1 + max |Q|), so the iteration terminates.
    """
    policies = game.check_policies(policies)
    if not 0 <= agent < game.n_agents:
        raise ValueError(f"agent must be in 0..{game.n_agents - 1}, got {agent}")
    others = [i for i in range(game.n_agents) if i != agent]
    transitions = expect_over(game.transitions, policies, over=others, keep=[agent])
    rewards = expect_over(game.rewards, policies, over=others, keep=[agent])
    states = np.arange(game.n_states)
    actions = rewards.argmax(axis=1)
    identity = np.eye(game.n_states)
    while True:
        v = np.linalg.solve(identity - game.gamma * transitions[states, actions], rewards[states, actions])
        q = rewards + game.gamma * transitions @ v
        current = q[states, actions]
        better = q.max(axis=1) > current + tol * (1 + np.abs(q).max())
        if not np.any(better):
            break
        actions = np.where(better, q.argmax(axis=1), actions)
    policy = np.zeros((game.n_states, game.n_actions[agent]))
    policy[states, actions] = 1.0
    return BestResponse(policy=policy, j=float(game.initial @ v))


def nash_gaps(game: MarkovGame, policies: Sequence[np.ndarray]) -> np.ndarray:
    """For each agent, J(best response, pi^{-i}) - J(pi) (>= 0; all 0 at a Nash equilibrium)."""
    j = evaluate(game, policies).j
    return np.array([best_response(game, policies, i).j - j for i in range(game.n_agents)])
