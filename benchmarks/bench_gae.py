"""GAE: hapo's C++ kernel against a vectorised torch scan and a per-step NumPy loop.

The NumPy loop walks time step by step over arrays of environments, the way the
reference HAPPO/HATRPO code computes returns. Run: python benchmarks/bench_gae.py
"""

import argparse

import numpy as np
import torch

import hapo
from _timing import median_seconds, print_table


def torch_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    alive = 1.0 - terminated.float()
    carry = alive * (1.0 - truncated.float())
    deltas = rewards + gamma * alive * next_values - values
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * carry[t] * running
        advantages[t] = running
    return advantages, advantages + values


def numpy_step_loop_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        alive = 1.0 - terminated[t]
        delta = rewards[t] + gamma * next_values[t] * alive - values[t]
        running = delta + gamma * lam * alive * (1.0 - truncated[t]) * running
        advantages[t] = running
    return advantages, advantages + values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for T, B in [(200, 120), (1000, 1088)]:
        gen = torch.Generator().manual_seed(0)
        rewards, values, next_values = (torch.randn(T, B, generator=gen) for _ in range(3))
        terminated = torch.rand(T, B, generator=gen) < 0.01
        truncated = (torch.rand(T, B, generator=gen) < 0.005) & ~terminated
        tensors = (rewards, values, next_values, terminated, truncated)
        arrays = tuple(t.numpy().astype(np.float32) for t in tensors)
        ours = median_seconds(lambda: hapo.gae(*tensors, 0.99, 0.95), args.repeats)
        peers = {
            "torch, vectorised over B": median_seconds(
                lambda: torch_gae(*tensors, 0.99, 0.95), args.repeats
            ),
            "NumPy per-step loop": median_seconds(
                lambda: numpy_step_loop_gae(*arrays, 0.99, 0.95), args.repeats
            ),
        }
        ref = numpy_step_loop_gae(*arrays, 0.99, 0.95)[0]
        np.testing.assert_allclose(hapo.gae(*tensors, 0.99, 0.95)[0].numpy(), ref, atol=1e-3)
        rows.append([f"({T}, {B})", "hapo C++", f"{ours * 1e3:.3f}", "1.0"])
        for name, seconds in peers.items():
            rows.append([f"({T}, {B})", name, f"{seconds * 1e3:.3f}", f"{seconds / ours:.1f}x"])
    print_table(
        f"GAE, median of {args.repeats} (1 torch thread)",
        ["[T, B]", "implementation", "median ms", "time / hapo"],
        rows,
    )


if __name__ == "__main__":
    main()
