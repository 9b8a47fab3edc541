"""Proposition 1 with the real trainer: separate actors against one shared actor.

The n-agent one-step game (hapo.envs.toy ToySplit): reward 1 when one half of the agents
plays 0 and the other half plays 1 (either way round), else 0. The best shared policy
reaches 2/2^n of the optimum (checked exactly by `python -m hapo.theory`). This trains
HAPPO (or HATRPO) with separate and with shared parameters over several seeds and counts
the runs whose final deterministic evaluation return is near the optimum. It also prints
the final stochastic (training) return: a shared policy's bound 2/2^n is for the
stochastic policy, and acting deterministically a shared policy plays one action for
every agent, which scores 0.

Run: python benchmarks/proposition1.py [--algo happo] [--seeds 10] [--agents 2 4]
"""

import argparse
import statistics

from _timing import print_table

from hapo import config
from hapo.train import Trainer

NEAR_OPTIMUM = 0.9


def final_returns(algo: str, agents: int, seed: int, shared: bool, steps: int) -> tuple[float, float]:
    """(deterministic evaluation return, stochastic return of the last training episodes)."""
    cfg = config.load("toy_split").with_overrides([
        f"algo.name={algo}", f"env.agent_conf={agents}", f"run.seed={seed}", f"run.num_env_steps={steps}",
        f"algo.share_param={str(shared).lower()}", "run.progress=false", "run.tensorboard=false",
    ])
    trainer = Trainer(cfg)
    trainer.train()
    return trainer.evaluate(cfg.run.eval_episodes), trainer.history[-1]["train_return"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="happo")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--num-env-steps", type=int, default=10240)
    args = parser.parse_args()
    rows = []
    for agents in args.agents:
        bound = 2 / 2**agents
        for shared in (False, True):
            runs = [final_returns(args.algo, agents, seed, shared, args.num_env_steps) for seed in range(1, args.seeds + 1)]
            returns = [deterministic for deterministic, _ in runs]
            stochastic = [train for _, train in runs]
            near = sum(r >= NEAR_OPTIMUM for r in returns)
            rows.append([
                agents, "shared" if shared else "separate", f"{bound:.4f}", f"{statistics.median(returns):.3f}",
                f"{min(returns):.3f}", f"{max(returns):.3f}", f"{near} of {len(returns)}",
                f"{statistics.median(stochastic):.3f}", f"{max(stochastic):.3f}",
            ])
    print_table(
        f"Proposition 1 game, {args.algo}, {args.num_env_steps} env steps per run",
        [
            "agents", "parameters", "shared bound 2/2^n", "median eval return", "min", "max",
            f"runs >= {NEAR_OPTIMUM}", "median stochastic return", "max stochastic",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
