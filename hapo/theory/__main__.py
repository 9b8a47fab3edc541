"""`python -m hapo.theory`: run the exact checks of the paper's statements and print tables."""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from rich.console import Console
from rich.table import Table

from hapo.theory import (
    algorithm1,
    best_joint_return,
    best_shared_policy,
    evaluate,
    figure1,
    gaussian_kl,
    local_advantage,
    nash_gaps,
    random_game,
    random_policies,
)


def _table(title: str, caption: str, columns: list[str]) -> Table:
    table = Table(title=title, caption=caption, caption_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def lemma1(seed: int) -> Table:
    table = _table(
        "Lemma 1: multi-agent advantage decomposition",
        "max over states and joint actions of |A(s, a) - sum_m A^{i_m}(s, a^{i_1:m-1}, a^{i_m})|,\n"
        "over 5 random joint policies, each with a random agent order",
        ["game (states, actions per agent)", "gamma", "max |A|", "max error"],
    )
    rng = np.random.default_rng(seed)
    for n_states, n_actions in [(3, (2, 3)), (4, (2, 2, 3)), (2, (2, 2, 2, 2))]:
        gamma = 0.9
        worst = scale = 0.0
        for _ in range(5):
            game = random_game(rng, n_states, n_actions, gamma)
            policies = random_policies(rng, game)
            result = evaluate(game, policies)
            order = [int(i) for i in rng.permutation(game.n_agents)]
            total = np.zeros_like(result.advantage)
            for m in range(1, game.n_agents + 1):
                local = local_advantage(result.q, policies, order, m)
                # put agent axes back into index order and broadcast over the agents after i_m
                axes = [0] + [1 + order.index(i) for i in sorted(order[:m])]
                shaped = local.transpose(axes).reshape(
                    [n_states] + [game.n_actions[i] if i in order[:m] else 1 for i in range(game.n_agents)]
                )
                total = total + shaped
            worst = max(worst, float(np.abs(result.advantage - total).max()))
            scale = max(scale, float(np.abs(result.advantage).max()))
        table.add_row(f"{n_states}, {n_actions}", f"{gamma}", f"{scale:.3f}", f"{worst:.1e}")
    return table


def theorem2(seed: int) -> Table:
    checkpoints = [0, 1, 5, 20, 50]
    table = _table(
        "Theorem 2: Algorithm 1 never lowers J",
        "J after k iterations (random permutation each iteration); 'worst step' is the smallest\n"
        "J(k+1) - J(k) seen; 'Lemma 2 slack' the smallest J(k+1) - J(k) - sum_m [L_m - C KL_m]",
        ["game", "gamma", *[f"J({k})" for k in checkpoints], "worst step", "Lemma 2 slack"],
    )
    rng = np.random.default_rng(seed)
    for n_states, n_actions, gamma in [(3, (2, 3), 0.5), (4, (2, 2, 2), 0.9), (5, (3, 3), 0.99)]:
        game = random_game(rng, n_states, n_actions, gamma)
        _, history = algorithm1(game, random_policies(rng, game), rng, iterations=checkpoints[-1])
        js = [history[0].j_before] + [r.j_after for r in history]
        steps = [r.j_after - r.j_before for r in history]
        slack = [r.j_after - r.j_before - sum(s.objective for s in r.steps) for r in history]
        table.add_row(
            f"{n_states}, {n_actions}",
            f"{gamma}",
            *[f"{js[k]:.6f}" for k in checkpoints],
            f"{min(steps):.2e}",
            f"{min(slack):.2e}",
        )
    return table


def theorem3(seed: int) -> Table:
    table = _table(
        "Theorem 3: where Algorithm 1 converges, no agent can improve alone",
        "Nash gap = max over agents of J(exact best response, others fixed) - J;\n"
        "runs stop when an iteration no longer raises J, or after 300 iterations",
        ["game", "gamma", "iterations", "converged", "J", "gap at start", "gap at end"],
    )
    for game_seed in range(seed, seed + 8):
        rng = np.random.default_rng(game_seed)
        game = random_game(rng, 2, (2, 2), 0.1)
        start = random_policies(rng, game)
        policies, history = algorithm1(game, start, rng, iterations=300, stop_below=0.0)
        converged = history[-1].j_after - history[-1].j_before <= 0.0
        table.add_row(
            "2, (2, 2)",
            "0.1",
            str(len(history)),
            "yes" if converged else "no",
            f"{history[-1].j_after:.6f}",
            f"{nash_gaps(game, start).max():.2e}",
            f"{nash_gaps(game, policies).max():.2e}",
        )
    return table


def proposition1() -> Table:
    table = _table(
        "Proposition 1: parameter sharing can be exponentially worse",
        "one state, actions {0, 1}; reward 1 iff one half plays 0 and the other half plays 1\n"
        "(first half 0 and second half 1, or the reverse); shared policy optimised numerically",
        ["n agents", "best shared P(1)", "best shared J", "2 / 2^n", "optimum J (separate)"],
    )
    for n in (2, 4, 6):
        shared = best_shared_policy(n)
        table.add_row(str(n), f"{shared.p_one:.6f}", f"{shared.j:.10f}", f"{shared.bound:.10f}", f"{best_joint_return(n):.1f}")
    return table


def figure1_table() -> Table:
    result = figure1()
    table = _table(
        "Figure 1: r = a1 * a2, unit-variance Gaussian policies, KL radius 0.5 per agent",
        "J = mu1 * mu2; KL(N(m, 1) || N(m', 1)) = (m - m')^2 / 2, so each step moves a mean by at most 1",
        ["update", "mu1", "mu2", "J", "KL agent 1", "KL agent 2"],
    )
    rows = [("initial", result.initial), ("simultaneous (independent)", result.simultaneous)]
    rows += [(f"sequential, agent {a + 1} then {b + 1}", result.sequential[(a, b)]) for a, b in itertools.permutations((0, 1))]
    for name, means in rows:
        table.add_row(
            name,
            f"{means[0]:+.4f}",
            f"{means[1]:+.4f}",
            f"{means[0] * means[1]:+.4f}",
            f"{gaussian_kl(result.initial[0], means[0]):.4f}",
            f"{gaussian_kl(result.initial[1], means[1]):.4f}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hapo.theory", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random games and policies")
    args = parser.parse_args(argv)
    console = Console(width=140)
    for table in (lemma1(args.seed), theorem2(args.seed), theorem3(args.seed), proposition1(), figure1_table()):
        console.print(table)
        console.print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
