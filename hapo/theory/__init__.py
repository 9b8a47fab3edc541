"""Exact checks of the paper's statements on small cooperative Markov games.

`python -m hapo.theory` runs the demos; docs/theory.md explains them.
"""

from hapo.theory.policy_iteration import (
    BestResponse,
    Iteration,
    PenalisedStep,
    algorithm1,
    algorithm1_iteration,
    best_response,
    nash_gaps,
    penalised_step,
    penalty_coefficient,
)
from hapo.theory.game import (
    Evaluation,
    MarkovGame,
    evaluate,
    expect_over,
    joint_probabilities,
    kl,
    local_advantage,
    marginal_q,
    max_kl,
    random_game,
    random_policies,
    uniform_policies,
)
from hapo.theory.paper import (
    Figure1,
    SharedOptimum,
    best_joint_return,
    best_shared_policy,
    figure1,
    gaussian_kl,
    half_split_game,
    shared_policy_return,
)

__all__ = [
    "BestResponse",
    "Evaluation",
    "Figure1",
    "Iteration",
    "MarkovGame",
    "PenalisedStep",
    "SharedOptimum",
    "algorithm1",
    "algorithm1_iteration",
    "best_joint_return",
    "best_response",
    "best_shared_policy",
    "evaluate",
    "expect_over",
    "figure1",
    "gaussian_kl",
    "half_split_game",
    "joint_probabilities",
    "kl",
    "local_advantage",
    "marginal_q",
    "max_kl",
    "nash_gaps",
    "penalised_step",
    "penalty_coefficient",
    "random_game",
    "random_policies",
    "shared_policy_return",
    "uniform_policies",
]
