"""HATRPO's natural-gradient direction: the Fisher as explicit Jacobian products against autograd.

One agent's solve of (F + damping I) x = g and the curvature x^T (F + damping I) x, on a
4,000-state batch, 10 CG iterations (tolerance 0, so every implementation runs all ten),
damping 0.1. The actor is hapo's in the paper's setting (`paper_mamujoco`: MLP [128, 128,
128] ReLU with a LayerNorm on the input and after every hidden layer, Gaussian with std =
0.5 sigmoid(theta)); agent sizes are those of the global observation (the task's full
observation plus a one-hot agent id), read from hapo's environments: HalfCheetah 6x1 and
2x3, Ant 4x2.

Implementations:
- "MlpFisher (Jacobian products)": `Actor.fisher(obs).solve(g)`: one forward pass saves the activations,
  each product is a forward-mode and a reverse-mode pass of matrix multiplies in C++.
- "conjugate_gradient (double backward)": the path HATRPO used before, kept as
  `algo.fisher: autograd` (`AutogradFisher`: hapo.conjugate_gradient, a C++ CG loop; the
  KL's gradient built once with its graph, one backward through it per product).
- "Python reference style": as the HATRPO authors' code does it, each product re-runs
  the actor, the KL and its gradient with create_graph, then the gradient of (grad_kl . v),
  in a Python CG loop.

Every implementation's x is checked against the double-backward one: relative difference
||x - x_ref|| / ||x_ref|| below 1e-5 in float32 and 1e-10 in float64.

Run: python benchmarks/bench_fvp.py [--repeats 11] [--dtypes float32 float64]
"""

import argparse
from functools import partial

import torch
from torch.nn.utils import parameters_to_vector

from _timing import interleaved_medians, print_table
from hapo import config, envs
from hapo.models import Actor, AutogradFisher

BATCH, ITERATIONS, DAMPING = 4000, 10, 0.1
TASKS = [("HalfCheetah", "6x1"), ("HalfCheetah", "2x3"), ("Ant", "4x2")]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def agent_sizes(scenario: str, partition: str) -> tuple[int, int]:
    """Agent 0's observation and action sizes with the paper's global observation."""
    env = envs.make(scenario, partition, obs_mode="global")
    try:
        return env.obs_sizes[0], env.action_sizes[0]
    finally:
        env.close()


def problem(obs_size: int, action_size: int, dtype: torch.dtype):
    """The paper-setting actor, a batch of observations and the surrogate gradient g = grad E[ratio * A]."""
    torch.manual_seed(0)
    actor = Actor(obs_size, action_size, "continuous", config.load("paper_mamujoco").model).to(dtype)
    obs = torch.randn(BATCH, obs_size, dtype=dtype)
    with torch.no_grad():
        old = actor.dist_params(obs)
        actions = actor.distribution_from_params(old).sample()
        old_log_prob = actor.log_prob_from_params(old, actions)
    advantages = torch.randn(BATCH, dtype=dtype)
    ratio = torch.exp(actor.log_prob(obs, actions) - old_log_prob)
    g = parameters_to_vector(torch.autograd.grad((ratio * advantages).mean(), list(actor.parameters())))
    return actor, obs, g


def current_kl(actor: Actor, obs: torch.Tensor) -> torch.Tensor:
    params = actor.dist_params(obs)
    return actor.kl_from_params(params.detach(), params)


def mlp_fisher(actor: Actor, obs: torch.Tensor, g: torch.Tensor):
    result = actor.fisher(obs, damping=DAMPING).solve(g, max_iterations=ITERATIONS, tolerance=0.0)
    return result.x, result.curvature


def double_backward(actor: Actor, obs: torch.Tensor, g: torch.Tensor):
    result = AutogradFisher.of_actor(actor, obs, damping=DAMPING).solve(g, max_iterations=ITERATIONS, tolerance=0.0)
    return result.x, result.curvature


def reference_style(actor: Actor, obs: torch.Tensor, g: torch.Tensor):
    params = list(actor.parameters())

    def fvp(v: torch.Tensor) -> torch.Tensor:
        grad_kl = parameters_to_vector(torch.autograd.grad(current_kl(actor, obs), params, create_graph=True))
        return parameters_to_vector(torch.autograd.grad(grad_kl @ v, params)) + DAMPING * v

    x = torch.zeros_like(g)
    r, p = g.clone(), g.clone()
    rr = r @ r
    for _ in range(ITERATIONS):
        Ap = fvp(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_next = r @ r
        p = r + (rr_next / rr) * p
        rr = rr_next
    return x, (x @ fvp(x)).item()


OURS, TODAY = "MlpFisher (Jacobian products)", "conjugate_gradient (double backward)"
IMPLEMENTATIONS = {OURS: mlp_fisher, TODAY: double_backward, "Python reference style": reference_style}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    args = parser.parse_args()
    sizes = {task: agent_sizes(*task) for task in TASKS}
    rows = []
    for dtype in (getattr(torch, name) for name in args.dtypes):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for (scenario, partition), (obs_size, action_size) in sizes.items():
                actor, obs, g = problem(obs_size, action_size, dtype)
                x_ref, _ = double_backward(actor, obs, g)
                differences = {}
                for name, impl in IMPLEMENTATIONS.items():
                    x, _ = impl(actor, obs, g)
                    differences[name] = ((x - x_ref).norm() / x_ref.norm()).item()
                    assert differences[name] < TOLERANCE[dtype], (name, differences[name])
                medians = interleaved_medians({name: partial(impl, actor, obs, g) for name, impl in IMPLEMENTATIONS.items()}, args.repeats)
                for name, seconds in medians.items():
                    rows.append([
                        str(dtype).removeprefix("torch."), threads, f"{scenario} {partition} ({obs_size} -> {action_size})",
                        g.numel(), name, f"{seconds * 1e3:.1f}", f"{seconds / medians[OURS]:.2f}x", f"{medians[TODAY] / seconds:.2f}x",
                        f"{differences[name]:.1e}",
                    ])
    print_table(
        f"FVP + CG ({ITERATIONS} iterations, damping {DAMPING}, +1 product for x^T F x), batch {BATCH}, "
        f"paper-setting actor; median of {args.repeats}, interleaved",
        ["dtype", "threads", "agent (obs -> act)", "parameters", "implementation", "median ms", "time / ours",
         "speed-up vs double backward", "|x - x_db| / |x_db|"],
        rows,
    )


if __name__ == "__main__":
    main()
