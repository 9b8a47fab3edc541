"""Acting for all agents: hapo's fused JointPolicy against one forward per agent.

The per-agent path is the way the reference HAPPO code acts: each agent's actor runs on
its observations and samples from a torch.distributions.Normal. hapo stacks the weights
of same-shaped actors and runs one batched matmul per layer for all of them.

Run: python benchmarks/bench_joint_policy.py
"""

import argparse

import torch
from _timing import median_seconds, print_table

from hapo.config import ModelConfig
from hapo.models import Actor, JointPolicy


def per_agent_act(actors, obs):
    with torch.no_grad():
        return [actor.distribution(o).sample() for actor, o in zip(actors, obs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = ModelConfig()  # HARL size: [128, 128, 128], ReLU, input LayerNorm
    rows = []
    for agents, obs_size, action_size in [(6, 17, 1), (2, 17, 3), (17, 40, 1)]:
        actors = [Actor(obs_size, action_size, "continuous", cfg) for _ in range(agents)]
        policy = JointPolicy(actors)
        for batch in (20, 64):
            obs = [torch.randn(batch, obs_size) for _ in range(agents)]
            ours = median_seconds(lambda: policy.act(obs), args.repeats)
            peer = median_seconds(lambda: per_agent_act(actors, obs), args.repeats)
            rows.append([f"{agents} x (obs {obs_size}, act {action_size})", batch, f"{ours * 1e3:.3f}", f"{peer * 1e3:.3f}", f"{peer / ours:.1f}x"])
    print_table(
        f"One action for every agent, median ms of {args.repeats} (1 torch thread)",
        ["actors", "batch", "hapo fused", "per-agent forward", "per-agent / fused"],
        rows,
    )


if __name__ == "__main__":
    main()
