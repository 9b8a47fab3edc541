"""Any algorithm end to end: final evaluation return, env-steps/s, and where the time goes.

Trains HalfCheetah 2x3 and 6x1 (the built-in configs tuned for each algorithm, or the schema
defaults where there is none) for 1M env steps each and prints, per task and algorithm, the
final deterministic evaluation return, the throughput (over the whole run, and over its
second half: after the off-policy warm-up), and the share of wall time spent collecting,
updating and evaluating. Needs the MuJoCo environments (hapo.envs.make).
`--toy` runs the same measurement on the toy tasks.

`--variants` trains every task once per variant (each a comma-separated list of config
overrides) and adds the throughput ratio to the first variant, e.g. HATRPO's Fisher before
and after the explicit Jacobian products:
  --algo hatrpo --tasks HalfCheetah-2x3 --variants algo.fisher=autograd algo.fisher=explicit

Run: python benchmarks/train_happo.py [--algo happo hatrpo mappo ...] [--tasks HalfCheetah-2x3] [--num-env-steps 1e6] [--toy]
     [--set KEY=VALUE ...] [--variants OVERRIDES ...]
"""

import argparse
import time

from _timing import print_table

from hapo import config
from hapo.algos import ALGORITHMS
from hapo.config import ConfigError
from hapo.train import Trainer

MUJOCO_TASKS = ["HalfCheetah-2x3", "HalfCheetah-6x1"]
# The toy tasks by built-in config name, per algorithm.
TOY_TASKS = {"happo": ["toy_reach", "toy_split"], "hatrpo": ["toy_reach_hatrpo", "toy_split"]}


def task_config(task: str, algo: str) -> config.Config:
    """A built-in config name, or SCENARIO-CONF: the config tuned for it and `algo`, else the schema defaults."""
    if task in config.builtin_names():
        return config.load(task).with_overrides([f"algo.name={algo}"])
    scenario, _, agent_conf = task.partition("-")
    tuned = config.tuned_name(scenario, agent_conf, algo)
    base = config.Config() if tuned is None else config.load(tuned)
    return base.with_overrides([f"env.scenario={scenario}", f"env.agent_conf={agent_conf}", f"algo.name={algo}"])


def run(base: config.Config, num_env_steps: str, seed: int, env_threads: int, torch_threads: int, update_threads: int) -> tuple[list[object], float]:
    """One table row and the run's env steps/s."""
    cfg = base.with_overrides([
        f"run.num_env_steps={num_env_steps}", f"run.seed={seed}", f"env.num_threads={env_threads}",
        f"run.torch_threads={torch_threads}", f"run.update_torch_threads={update_threads}", "run.progress=false",
    ])
    trainer = Trainer(cfg)
    seconds = {"collect_seconds": 0.0, "update_seconds": 0.0, "eval_seconds": 0.0}
    start = time.perf_counter()
    halfway = None  # (wall clock, env steps) when half the iterations are done
    while trainer.iteration < trainer.total_iterations:
        trainer.iterate()
        for key in seconds:
            seconds[key] += trainer.last_timing[key]
        if halfway is None and 2 * trainer.iteration >= trainer.total_iterations:
            halfway = (time.perf_counter(), trainer.env_steps)
    wall = time.perf_counter() - start
    second_half = (trainer.env_steps - halfway[1]) / (time.perf_counter() - halfway[0]) if trainer.env_steps > halfway[1] else float("nan")
    final = trainer.history[-1]["eval_return"]
    row = [
        f"{cfg.env.scenario} {cfg.env.agent_conf}", cfg.algo.name, trainer.env_steps, f"{final:.1f}",
        f"{trainer.env_steps / wall:,.0f}", f"{second_half:,.0f}", f"{trainer.env_steps / seconds['collect_seconds']:,.0f}",
        *(f"{100 * seconds[key] / wall:.0f}%" for key in seconds), f"{wall:.0f}",
    ]
    return row, trainer.env_steps / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-env-steps", default="1e6")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--env-threads", type=int, default=2, help="threads of the C++ env pool")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads while collecting (small batches: more threads cost more than they give on 2 cores)")
    parser.add_argument("--update-torch-threads", type=int, default=2, help="torch threads during the update (large batches)")
    parser.add_argument("--algo", nargs="+", default=["happo"], choices=sorted(ALGORITHMS), help="algorithms, each with its config tuned for the task (--toy: happo, hatrpo)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help=f"SCENARIO-CONF or built-in config names (default: {' '.join(MUJOCO_TASKS)})")
    parser.add_argument("--toy", action="store_true", help="the toy tasks instead of MuJoCo (no hapo.envs.make needed)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for every run")
    parser.add_argument("--variants", nargs="+", default=[""], metavar="OVERRIDES", help="train each task once per variant: comma-separated KEY=VALUE overrides")
    args = parser.parse_args()
    if args.toy and set(args.algo) - set(TOY_TASKS):
        parser.error(f"--toy has tasks for {', '.join(TOY_TASKS)} only")
    rows = []
    try:
        for algo in args.algo:
            for task in args.tasks or (TOY_TASKS[algo] if args.toy else MUJOCO_TASKS):
                base = task_config(task, algo).with_overrides(args.set)
                first = None
                for variant in args.variants:
                    cfg = base.with_overrides([o for o in variant.split(",") if o])
                    row, speed = run(cfg, args.num_env_steps, args.seed, args.env_threads, args.torch_threads, args.update_torch_threads)
                    first = first or speed
                    rows.append([*row[:2], variant or "-", *row[2:], f"{speed / first:.2f}x"])
    except ConfigError as err:
        parser.exit(2, f"{err}\n(--toy runs the same measurement on the toy tasks)\n")
    print_table(
        f"Training, seed {args.seed}, {args.env_threads} env threads, {args.torch_threads} torch threads ({args.update_torch_threads} in the update)",
        ["task", "algo", "variant", "env steps", "final eval return", "env steps/s", "2nd half steps/s", "collect-only steps/s",
         "collect", "update", "eval", "wall s", "steps/s vs first variant"],
        rows,
    )


if __name__ == "__main__":
    main()
