"""HATRPO's natural-gradient direction: hapo's C++ FVP + CG against the same in Python.

One agent's solve of (F + damping I) x = g and the curvature x^T (F + damping I) x,
on a 4,000-state batch with the default actor (MLP obs -> [128, 128, 128] ReLU ->
Gaussian mean, state-independent learned log-std), 10 CG iterations, damping 0.1.
Agent sizes are MaMuJoCo's (mamujoco_v1, agent_obsk=1): HalfCheetah 6x1 agent_0
(obs 9, act 1) and HalfCheetah 2x3 (obs 12, act 3).

Peers, all with torch.autograd and a Python CG loop:
- "Python, reference style": as the HATRPO authors' code does it, each Fisher-vector
  product re-runs the actor, the KL and its gradient with create_graph, then the
  gradient of (grad_kl . v); one more product gives the curvature.
- "Python, KL gradient once": the algorithm hapo runs in C++ (grad_kl built once,
  one backward per product), written in Python.

Run: python benchmarks/bench_fvp.py [--repeats 11] [--profile]
(--profile: torch's profiler logs its start and stop to stderr.)
"""

import argparse
from functools import partial

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.profiler import ProfilerActivity, profile

import hapo
from _timing import interleaved_medians, print_table

BATCH, HIDDEN, ITERATIONS, DAMPING = 4000, 128, 10, 0.1
AGENTS = {"HalfCheetah 6x1 (obs 9, act 1)": (9, 1), "HalfCheetah 2x3 (obs 12, act 3)": (12, 3)}


class Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        layers, width = [], obs_dim
        for _ in range(3):
            layers += [nn.Linear(width, HIDDEN), nn.ReLU()]
            width = HIDDEN
        self.body = nn.Sequential(*layers, nn.Linear(width, act_dim))
        self.log_std = nn.Parameter(torch.full((act_dim,), -0.5))

    def forward(self, obs: torch.Tensor) -> Normal:
        mean = self.body(obs)
        return Normal(mean, self.log_std.exp().expand_as(mean))


def mean_kl(actor: Actor, obs: torch.Tensor) -> torch.Tensor:
    new = actor(obs)
    old = Normal(new.loc.detach(), new.scale.detach())
    return kl_divergence(old, new).sum(-1).mean()


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def python_cg(fvp, g: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Conjugate gradient from x = 0, then one product for the curvature."""
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


def reference_style(actor: Actor, obs: torch.Tensor, g: torch.Tensor):
    params = list(actor.parameters())

    def fvp(v):
        kl = mean_kl(actor, obs)
        grad_kl = flat(torch.autograd.grad(kl, params, create_graph=True))
        return flat(torch.autograd.grad(grad_kl @ v, params)) + DAMPING * v

    return python_cg(fvp, g)


def gradient_once(actor: Actor, obs: torch.Tensor, g: torch.Tensor):
    params = list(actor.parameters())
    grad_kl = flat(torch.autograd.grad(mean_kl(actor, obs), params, create_graph=True))

    def fvp(v):
        return flat(torch.autograd.grad(grad_kl @ v, params, retain_graph=True)) + DAMPING * v

    return python_cg(fvp, g)


def hapo_cpp(actor: Actor, obs: torch.Tensor, g: torch.Tensor):
    result = hapo.conjugate_gradient(
        mean_kl(actor, obs),
        actor.parameters(),
        g,
        damping=DAMPING,
        max_iterations=ITERATIONS,
        tolerance=0.0,
    )
    assert result.iterations == ITERATIONS
    return result.x, result.curvature


OURS = "hapo C++ (one call)"
IMPLEMENTATIONS = {
    OURS: hapo_cpp,
    "Python, KL gradient once": gradient_once,
    "Python, reference style": reference_style,
}


def problem(obs_dim: int, act_dim: int):
    """The actor, a batch of observations and the surrogate gradient g = grad E[ratio * A]."""
    torch.manual_seed(0)
    actor = Actor(obs_dim, act_dim)
    obs = torch.randn(BATCH, obs_dim)
    with torch.no_grad():
        dist = actor(obs)
        actions = dist.sample()
        old_log_prob = dist.log_prob(actions).sum(-1)
    advantages = torch.randn(BATCH)
    ratio = torch.exp(actor(obs).log_prob(actions).sum(-1) - old_log_prob)
    g = flat(torch.autograd.grad((ratio * advantages).mean(), list(actor.parameters())))
    return actor, obs, g


def trivial_kl(actor: Actor) -> torch.Tensor:
    """0.5 * sum((theta - theta_old)^2) over the actor's parameters: F = I, a trivial graph.

    The solve then costs almost no kernel time, leaving the fixed cost of each
    implementation (Python interpreter, autograd calls, flattening) to be measured.
    """
    return sum(0.5 * ((p - p.detach()) ** 2).sum() for p in actor.parameters())


def trivial_problem_fns(actor: Actor, g: torch.Tensor) -> dict:
    params = list(actor.parameters())

    def python():
        grad_kl = flat(torch.autograd.grad(trivial_kl(actor), params, create_graph=True))
        return python_cg(
            lambda v: flat(torch.autograd.grad(grad_kl @ v, params, retain_graph=True))
            + DAMPING * v,
            g,
        )

    def cpp():
        return hapo.conjugate_gradient(
            trivial_kl(actor), params, g, damping=DAMPING, max_iterations=ITERATIONS,
            tolerance=0.0,
        )

    return {OURS: cpp, "Python, KL gradient once": python}


def top_ops(fn, count: int) -> tuple[float, list[tuple[str, float]]]:
    """Total and largest self CPU times (ms) of the torch ops in one profiled call."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    return total, [(e.key, e.self_cpu_time_total / 1e3) for e in events[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument(
        "--profile", action="store_true", help="also list the torch ops one C++ call spends time in"
    )
    args = parser.parse_args()
    rows, overhead_rows, profile_rows = [], [], []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for agent, (obs_dim, act_dim) in AGENTS.items():
            actor, obs, g = problem(obs_dim, act_dim)
            x_ref, curvature_ref = gradient_once(actor, obs, g)
            for name, impl in IMPLEMENTATIONS.items():
                x, curvature = impl(actor, obs, g)
                torch.testing.assert_close(x, x_ref, rtol=1e-3, atol=1e-4 * x_ref.abs().max())
                assert abs(curvature - curvature_ref) <= 1e-3 * curvature_ref, name
            calls = {name: partial(impl, actor, obs, g) for name, impl in IMPLEMENTATIONS.items()}
            medians = interleaved_medians(calls, args.repeats)
            ours = medians[OURS]
            for name, seconds in medians.items():
                ratio = "1.0" if name == OURS else f"{seconds / ours:.2f}x"
                rows.append([threads, agent, g.numel(), name, f"{seconds * 1e3:.1f}", ratio])
            fixed = interleaved_medians(trivial_problem_fns(actor, g), args.repeats)
            python_minus_cpp = fixed["Python, KL gradient once"] - fixed[OURS]
            overhead_rows.append(
                [threads, agent]
                + [f"{seconds * 1e3:.2f}" for seconds in fixed.values()]
                + [f"{python_minus_cpp * 1e3:.2f}"]
            )
            if args.profile:
                total, ops = top_ops(lambda: hapo_cpp(actor, obs, g), 6)
                profile_rows += [
                    [threads, agent, op, f"{ms:.1f}", f"{100 * ms / total:.0f}%"] for op, ms in ops
                ]
    print_table(
        f"FVP + CG ({ITERATIONS} iterations, damping {DAMPING}, +1 product for x^T F x), "
        f"batch {BATCH}, MLP [128, 128, 128]; median of {args.repeats}, interleaved",
        ["torch threads", "agent", "parameters", "implementation", "median ms", "time / hapo"],
        rows,
    )
    print_table(
        "Fixed cost of one solve: same parameters, trivial KL (F = I), median ms",
        ["torch threads", "agent", "hapo C++", "Python, KL gradient once", "Python - C++"],
        overhead_rows,
    )
    if args.profile:
        print_table(
            "Where one hapo C++ call spends its op time (torch.profiler, self CPU)",
            ["torch threads", "agent", "op", "self ms", "share"],
            profile_rows,
        )


if __name__ == "__main__":
    main()
