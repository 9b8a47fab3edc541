"""The paper's statements, checked exactly on small games (see docs/theory.md).

References we did not write: explicit Python loops over joint actions, iterative policy
evaluation, SciPy's SLSQP and numerical integration, and brute-force grids.
"""

import itertools

import numpy as np
import pytest
from scipy import integrate, optimize

from hapo.theory import (
    MarkovGame,
    algorithm1,
    best_joint_return,
    best_response,
    best_shared_policy,
    evaluate,
    figure1,
    gaussian_kl,
    half_split_game,
    joint_probabilities,
    kl,
    local_advantage,
    marginal_q,
    nash_gaps,
    penalised_step,
    penalty_coefficient,
    random_game,
    random_policies,
    shared_policy_return,
)

GAME_SHAPES = [(1, (2, 2)), (3, (2, 3)), (4, (3, 2, 2)), (2, (2, 2, 2, 2))]


def loop_iterative_evaluation(game, policies, sweeps):
    """V by repeated Bellman backups, every sum an explicit loop over joint actions."""
    v = np.zeros(game.n_states)
    joint_actions = list(itertools.product(*(range(k) for k in game.n_actions)))
    for _ in range(sweeps):
        new = np.zeros(game.n_states)
        for s in range(game.n_states):
            for a in joint_actions:
                prob = np.prod([policies[i][s, a[i]] for i in range(game.n_agents)])
                backup = game.rewards[(s, *a)] + game.gamma * sum(
                    game.transitions[(s, *a, s2)] * v[s2] for s2 in range(game.n_states)
                )
                new[s] += prob * backup
        v = new
    return v


@pytest.mark.parametrize("n_states,n_actions", GAME_SHAPES)
def test_exact_evaluation_matches_iterative_policy_evaluation(n_states, n_actions):
    rng = np.random.default_rng(n_states * 100 + len(n_actions))
    game = random_game(rng, n_states, n_actions, gamma=0.8)
    policies = random_policies(rng, game)
    result = evaluate(game, policies)
    sweeps = 160  # 0.8^160 * max V < 1e-13
    np.testing.assert_allclose(result.v, loop_iterative_evaluation(game, policies, sweeps), rtol=0, atol=1e-10)
    # Q is consistent with V: V(s) = sum_a pi(a|s) Q(s, a), and A averages to zero under pi
    pi = joint_probabilities(policies)
    axes = tuple(range(1, game.n_agents + 1))
    np.testing.assert_allclose((pi * result.q).sum(axis=axes), result.v, atol=1e-12)
    np.testing.assert_allclose((pi * result.advantage).sum(axis=axes), 0.0, atol=1e-12)
    # rho_pi: the discounted state visits, by iterating rho <- initial + gamma P_pi^T rho
    p_pi = (game.transitions * pi[..., np.newaxis]).sum(axis=axes)
    rho = np.zeros(game.n_states)
    for _ in range(sweeps):
        rho = game.initial + game.gamma * p_pi.T @ rho
    np.testing.assert_allclose(result.state_distribution, rho, atol=1e-10)
    r_pi = (pi * game.rewards).sum(axis=axes)
    assert result.j == pytest.approx(game.initial @ result.v, abs=1e-12)
    assert result.j == pytest.approx(rho @ r_pi, abs=1e-10)


def loop_marginal_q(q, policies, agents):
    """Q^{agents}(s, a^{agents}) by an explicit loop over the other agents' actions."""
    n = len(policies)
    others = [i for i in range(n) if i not in agents]
    n_states = q.shape[0]
    out = np.zeros((n_states, *(policies[i].shape[1] for i in agents)))
    for s in range(n_states):
        for own in itertools.product(*(range(policies[i].shape[1]) for i in agents)):
            total = 0.0
            for rest in itertools.product(*(range(policies[i].shape[1]) for i in others)):
                action = [0] * n
                for i, a in zip(agents, own):
                    action[i] = a
                for i, a in zip(others, rest):
                    action[i] = a
                total += np.prod([policies[i][s, action[i]] for i in others]) * q[(s, *action)]
            out[(s, *own)] = total
    return out


@pytest.mark.parametrize("n_states,n_actions", GAME_SHAPES)
def test_lemma1_advantage_decomposition(n_states, n_actions):
    rng = np.random.default_rng(7 + n_states)
    for _ in range(3):
        game = random_game(rng, n_states, n_actions, gamma=float(rng.uniform(0.5, 0.99)))
        policies = random_policies(rng, game)
        result = evaluate(game, policies)
        order = [int(i) for i in rng.permutation(game.n_agents)]
        locals_ = [local_advantage(result.q, policies, order, m) for m in range(1, game.n_agents + 1)]
        for m in range(1, game.n_agents + 1):
            np.testing.assert_allclose(
                marginal_q(result.q, policies, order[:m]), loop_marginal_q(result.q, policies, order[:m]), atol=1e-12
            )
            # a local advantage averages to zero over the agent's own policy
            own_policy = policies[order[m - 1]]
            own = (locals_[m - 1] * own_policy.reshape(own_policy.shape[0], *(1,) * (m - 1), -1)).sum(axis=-1)
            np.testing.assert_allclose(own, 0.0, atol=1e-12)
        for s in range(game.n_states):
            for action in itertools.product(*(range(k) for k in game.n_actions)):
                in_order = [action[i] for i in order]
                decomposed = sum(locals_[m][(s, *in_order[: m + 1])] for m in range(game.n_agents))
                assert abs(result.advantage[(s, *action)] - decomposed) <= 1e-10


def slsqp_step(weights, gains, old, penalty):
    """The same maximisation by SciPy SLSQP on (x, t) with constraints KL_s(x) <= t."""
    n_states, k = gains.shape

    def unpack(y):
        return y[:-1].reshape(n_states, k), y[-1]

    def negative_objective(y):
        x, t = unpack(y)
        return -(weights * (x * gains).sum(axis=1)).sum() + penalty * t

    constraints = [
        {"type": "ineq", "fun": lambda y: unpack(y)[1] - kl(old, unpack(y)[0])},
        {"type": "eq", "fun": lambda y: unpack(y)[0].sum(axis=1) - 1},
    ]
    start = np.append(old.ravel(), 0.0)
    bounds = [(1e-12, 1.0)] * (n_states * k) + [(0.0, None)]
    result = optimize.minimize(
        negative_objective, start, method="SLSQP", bounds=bounds, constraints=constraints, options={"ftol": 1e-12, "maxiter": 500}
    )
    x, t = unpack(result.x)
    # SLSQP may stop on a line-search message near the optimum; use its point only if feasible
    assert kl(old, x).max() <= t + 1e-9 and np.allclose(x.sum(axis=1), 1, atol=1e-9), result.message
    return x, (weights * (x * gains).sum(axis=1)).sum() - penalty * kl(old, x).max()


@pytest.mark.parametrize("seed", range(6))
def test_penalised_step_matches_slsqp_and_beats_feasible_points(seed):
    rng = np.random.default_rng(seed)
    n_states, k = 3, 3
    weights = rng.dirichlet(np.ones(n_states)) * 3
    gains = rng.normal(size=(n_states, k))
    old = rng.dirichlet(np.ones(k), size=n_states)
    penalty = float(rng.uniform(0.5, 5.0))
    step = penalised_step(weights, gains, old, penalty)
    x_ref, value_ref = slsqp_step(weights, gains, old, penalty)
    assert step.objective >= value_ref - 1e-9
    np.testing.assert_allclose(step.policy, x_ref, atol=2e-4)
    np.testing.assert_allclose(step.policy.sum(axis=1), 1.0, atol=1e-14)
    assert step.max_kl == pytest.approx(kl(old, step.policy).max(), rel=1e-9)
    # every state moves to the same KL level (the max is attained everywhere at the optimum)
    np.testing.assert_allclose(kl(old, step.policy), step.max_kl, rtol=1e-9)
    for _ in range(200):
        other = np.clip(step.policy + rng.normal(scale=1e-3, size=old.shape), 1e-12, None)
        other /= other.sum(axis=1, keepdims=True)
        value = (weights * (other * gains).sum(axis=1)).sum() - penalty * kl(old, other).max()
        assert value <= step.objective + 1e-12


def test_penalised_step_rejects_bad_input():
    old = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="penalty must be a positive finite number, got 0"):
        penalised_step(np.ones(2), np.zeros((2, 2)), old, 0.0)
    with pytest.raises(ValueError, match=r"expected weights \(S,\), gains \(S, k\)"):
        penalised_step(np.ones(3), np.zeros((2, 2)), old, 1.0)
    with pytest.raises(ValueError, match="gains finite"):
        penalised_step(np.ones(2), np.full((2, 2), np.nan), old, 1.0)


THEOREM2_GAMES = [(2, (2, 2), 0.5), (3, (2, 3), 0.9), (3, (2, 2, 2), 0.95), (4, (3, 2), 0.99), (1, (3, 3), 0.7)]


@pytest.mark.parametrize("n_states,n_actions,gamma", THEOREM2_GAMES)
def test_theorem2_monotonic_improvement_and_lemma2_bound(n_states, n_actions, gamma):
    """J never decreases, by at least the sum of the agents' penalised objectives (Lemma 2).

    Tolerance: 1e-11 * (1 + |J|), float64 rounding in the linear solves.
    """
    for seed in range(3):
        rng = np.random.default_rng([seed, n_states, len(n_actions)])
        game = random_game(rng, n_states, n_actions, gamma)
        _, history = algorithm1(game, random_policies(rng, game), rng, iterations=15)
        for record in history:
            tol = 1e-11 * (1 + abs(record.j_before))
            objectives = [step.objective for step in record.steps]
            assert min(objectives) >= -tol
            assert record.j_after - record.j_before >= sum(objectives) - tol
        improvements = [r.j_after - r.j_before for r in history]
        assert sum(improvements) > 0


def test_theorem3_converged_runs_end_at_nash_equilibria():
    """Where Algorithm 1 stops improving J, no agent gains by an exact best response.

    gamma = 0.1 keeps the penalty C small enough for runs to converge within the cap;
    runs still improving at the cap are only required to have shrunk their gap.
    """
    converged = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        game = random_game(rng, 2, (2, 2), 0.1)
        start = random_policies(rng, game)
        policies, history = algorithm1(game, start, rng, iterations=150, stop_below=0.0)
        gaps = nash_gaps(game, policies)
        if history[-1].j_after - history[-1].j_before <= 0.0:
            converged += 1
            assert gaps.max() <= 1e-12
        else:
            assert gaps.max() < 0.1 * nash_gaps(game, start).max()
    assert converged >= 4


def test_deterministic_non_equilibria_are_fixed_points_when_gamma_exceeds_one_fifth():
    """Why Theorem 3 needs care at the boundary of the simplex (docs/theory.md).

    From a deterministic p, moving mass eta costs C * KL >= C * eta but gains at most
    eta * max|A| / (1 - gamma), which is less when gamma > 1/5. So p is the unique maximiser
    of every agent's penalised objective even when p is not a Nash equilibrium. Checked
    here without our solver: the objective is negative at random policies and along the
    segment towards the exact best response.
    """
    rng = np.random.default_rng(11)
    game = random_game(rng, 3, (2, 2), 0.5)
    for actions in itertools.product(range(2), repeat=2 * game.n_states):
        policies = (np.eye(2)[list(actions[:3])], np.eye(2)[list(actions[3:])])
        if nash_gaps(game, policies).max() > 1e-2:
            break
    result = evaluate(game, policies)
    penalty = penalty_coefficient(game.gamma, result.advantage)
    for agent in range(2):
        gains = local_advantage(result.q, policies, [agent], 1)
        old = policies[agent]

        def objective(x):
            return (result.state_distribution * (x * gains).sum(axis=1)).sum() - penalty * kl(old, x).max()

        assert objective(old) == 0.0
        target = best_response(game, policies, agent).policy
        candidates = [rng.dirichlet(np.ones(2), size=game.n_states) for _ in range(500)]
        candidates += [old + eta * (target - old) for eta in np.logspace(-12, 0, 49) if not np.allclose(target, old)]
        assert max(objective(x) for x in candidates) < 0.0
    assert nash_gaps(game, policies).max() > 1e-2


def test_best_response_beats_every_deterministic_policy():
    rng = np.random.default_rng(3)
    game = random_game(rng, 3, (3, 2), 0.9)
    policies = random_policies(rng, game)
    for agent in range(2):
        response = best_response(game, policies, agent)
        best = -np.inf
        for actions in itertools.product(range(game.n_actions[agent]), repeat=game.n_states):
            candidate = list(policies)
            candidate[agent] = np.eye(game.n_actions[agent])[list(actions)]
            best = max(best, evaluate(game, candidate).j)
        assert response.j == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("n_agents", [2, 4, 6])
def test_proposition1_shared_policy_reaches_two_over_two_to_the_n(n_agents):
    optimum = best_shared_policy(n_agents)
    assert optimum.j == pytest.approx(2.0 / 2**n_agents, rel=1e-12)
    assert optimum.p_one == pytest.approx(0.5, abs=1e-5)
    assert best_joint_return(n_agents) == 1.0
    # brute force: reward of every joint action, weighted by the shared policy, on a grid
    half = n_agents // 2
    grid = np.linspace(0.0, 1.0, 2001)
    values = np.zeros_like(grid)
    for action in itertools.product((0, 1), repeat=n_agents):
        reward = float(action == (0,) * half + (1,) * half or action == (1,) * half + (0,) * half)
        ones = sum(action)
        values += reward * grid**ones * (1 - grid) ** (n_agents - ones)
    assert values.max() == pytest.approx(optimum.j, rel=1e-12)
    for p in (0.1, 0.37, 0.5):
        assert shared_policy_return(n_agents, p) == pytest.approx(np.interp(p, grid, values), rel=1e-9)
    # separate deterministic policies reach the optimum: each agent plays its half's action
    game = half_split_game(n_agents)
    deterministic = [np.array([[1.0, 0.0]])] * half + [np.array([[0.0, 1.0]])] * half
    assert evaluate(game, deterministic).j == 1.0


def quad_gaussian_kl(mean_p, mean_q):
    def integrand(x):
        log_p = -0.5 * (x - mean_p) ** 2
        log_q = -0.5 * (x - mean_q) ** 2
        return np.exp(log_p) / np.sqrt(2 * np.pi) * (log_p - log_q)

    return integrate.quad(integrand, -np.inf, np.inf)[0]


def quad_product_return(mean_1, mean_2):
    """E[a1 * a2] by integrating each agent's mean separately (independent Gaussians)."""

    def mean(m):
        return integrate.quad(lambda x: x * np.exp(-0.5 * (x - m) ** 2) / np.sqrt(2 * np.pi), -np.inf, np.inf)[0]

    return mean(mean_1) * mean(mean_2)


def test_figure1_simultaneous_steps_lower_the_return_and_sequential_raise_it():
    result = figure1()
    assert result.initial_return == pytest.approx(-0.0625)
    assert result.simultaneous == pytest.approx((0.75, -0.75))
    assert result.simultaneous_return == pytest.approx(-0.5625)
    assert result.sequential[(0, 1)] == pytest.approx((0.75, 1.25))
    assert result.sequential[(1, 0)] == pytest.approx((-1.25, -0.75))
    for order in ((0, 1), (1, 0)):
        assert result.sequential_return(order) == pytest.approx(0.9375)
    # independent references: the KL and the return by numerical integration
    for a, b in [(-0.25, 0.75), (0.25, -0.75), (0.3, 1.1)]:
        assert gaussian_kl(a, b) == pytest.approx(quad_gaussian_kl(a, b), abs=1e-9)
    assert result.simultaneous_return == pytest.approx(quad_product_return(*result.simultaneous), abs=1e-9)
    # each step is the best mean inside its trust region, by a grid over the region
    initial = result.initial
    for agent in (0, 1):
        region = np.linspace(initial[agent] - 1.2, initial[agent] + 1.2, 24001)
        feasible = region[0.5 * (region - initial[agent]) ** 2 <= result.radius + 1e-12]
        best = feasible[np.argmax(feasible * initial[1 - agent])]
        assert result.simultaneous[agent] == pytest.approx(best, abs=1e-4)


def test_bad_games_and_policies_are_named():
    good = random_game(np.random.default_rng(0), 2, (2, 3), 0.9)
    with pytest.raises(ValueError, match=r"rewards must have shape \(2, 2, 3\), got \(2, 2\)"):
        MarkovGame(good.transitions, good.rewards[:, :, 0], 0.9, good.initial)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\), got 1.0"):
        MarkovGame(good.transitions, good.rewards, 1.0, good.initial)
    with pytest.raises(ValueError, match="transitions must sum to 1"):
        MarkovGame(good.transitions * 2, good.rewards, 0.9, good.initial)
    with pytest.raises(ValueError, match="initial must have shape"):
        MarkovGame(good.transitions, good.rewards, 0.9, np.ones(3) / 3)
    with pytest.raises(ValueError, match="rewards must be finite"):
        MarkovGame(good.transitions, np.full_like(good.rewards, np.nan), 0.9, good.initial)
    policies = random_policies(np.random.default_rng(1), good)
    with pytest.raises(ValueError, match=r"policy of agent 1 must have shape \(2, 3\), got \(2, 2\)"):
        evaluate(good, (policies[0], policies[0]))
    with pytest.raises(ValueError, match="expected 2 agent policies, got 1"):
        evaluate(good, policies[:1])
    with pytest.raises(ValueError, match="policy of agent 0 must be non-negative"):
        evaluate(good, (policies[0] * -1, policies[1]))
    with pytest.raises(ValueError, match="order must be a permutation of range"):
        from hapo.theory import algorithm1_iteration

        algorithm1_iteration(good, policies, [0, 0])
    with pytest.raises(ValueError, match="Algorithm 1 needs gamma > 0"):
        algorithm1(half_split_game(2), (np.full((1, 2), 0.5),) * 2, np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="n_agents must be an even integer >= 2, got 3"):
        half_split_game(3)
