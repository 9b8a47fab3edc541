"""Batched multi-agent MuJoCo: hapo's env against the limit and the peers, env-steps/s.

The limit is a plain C++ loop of mj_step over the same model and frame skip, no
observation, reward or reset (cpp/benchmarks/bench_env.cpp; built into build/bench if
missing). Every other figure is divided by the limit at the same thread count (and
the same num_envs where it has one; 64 otherwise). Peers: mujoco.batch.Batch and
mujoco.rollout driven from Python on the same model, Gymnasium-Robotics' mamujoco_v1
in a Python loop, and envpool's single-agent v5 task in sync mode if installed.
Actions are drawn before timing. Run: python benchmarks/bench_env.py
"""

import argparse
import functools
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import mujoco
import mujoco.batch
import mujoco.rollout
import numpy as np

from _timing import print_table
from hapo.envs import make
from hapo.envs.env import load_model
from hapo.envs.partitions import get_scenario

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = [("HalfCheetah", "6x1"), ("Ant", "4x2"), ("Humanoid", "17x1"), ("ManySegmentSwimmer", "10x2")]
# Env-steps per timed block relative to --env-steps (the slower the task, the fewer).
STEP_SHARE = {"HalfCheetah": 1, "Ant": 4, "Humanoid": 4, "ManySegmentSwimmer": 2}
NUM_ENVS = (16, 64, 256)
THREADS = (1, 2)
ACTION_BATCHES = 32


def bench_binary() -> pathlib.Path:
    for candidate in (ROOT / "build/bench/bench_env_cpp", ROOT / "build/cpp/bench_env_cpp"):
        if candidate.exists():
            return candidate
    build = ROOT / "build/bench"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), *generator, "-DHAPO_BUILD_BENCHMARKS=ON",
         f"-DPython_EXECUTABLE={sys.executable}"],
        check=True,
    )
    subprocess.run(["cmake", "--build", str(build), "-j2", "--target", "bench_env_cpp"], check=True)
    return build / "bench_env_cpp"


@functools.cache
def model_file(scenario: str, partition: str) -> tuple[str, str, mujoco.MjModel]:
    """(MJCF path, task, model) of a case; a generated model is written to build/bench."""
    spec = get_scenario(scenario, partition)
    path, xml, model = load_model(scenario, spec)
    if xml:
        generated = ROOT / "build" / "bench" / f"{scenario}_{partition}.xml"
        generated.parent.mkdir(parents=True, exist_ok=True)
        generated.write_text(xml)
        path = str(generated)
    return path, spec.task, model


def cpp_rates(scenario: str, partition: str, num_envs: int, threads: int, env_steps: int) -> dict[str, float]:
    """One timed block of the C++ benchmark: {"plain": ..., "batched": ...} env-steps/s."""
    path, task, _ = model_file(scenario, partition)
    out = subprocess.run(
        [str(bench_binary()), path, task, str(env_steps), "1", str(num_envs), str(threads)],
        check=True, capture_output=True, text=True,
    ).stdout
    return {line.split()[0]: float(line.split()[3]) for line in out.split("\n") if line.strip()}


def median_rate(step, env_steps_per_call: int, calls: int, repeats: int) -> float:
    """Median env-steps/s of `calls` calls of step(i), after one untimed block."""
    rates = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        for i in range(calls):
            step(i)
        if r:
            rates.append(env_steps_per_call * calls / (time.perf_counter() - start))
    return statistics.median(rates)


def uniform_batches(rng, shape):
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(ACTION_BATCHES)]


def ours(scenario, partition, num_envs, threads, env_steps):
    """One timed block of our env's steps, env-steps/s.

    The env is made fresh for each block, as the C++ benchmark's envs are: the cost of a
    MuJoCo step depends on the motion (contacts), so both must sample the same phase
    of the episodes.
    """
    with make(scenario, partition, num_envs=num_envs, num_threads=threads, agent_obsk=1) as env:
        env.reset()
        rng = np.random.default_rng(0)
        batches = [[rng.uniform(-1, 1, (num_envs, n)).astype(np.float32) for n in env.action_sizes]
                   for _ in range(ACTION_BATCHES)]
        calls = max(10, env_steps // num_envs)
        return median_rate(lambda i: env.step(batches[i % ACTION_BATCHES]), num_envs, calls, 1)


def mujoco_batch(scenario, partition, num_envs, threads, frame_skip, env_steps, repeats):
    model = model_file(scenario, partition)[2]
    batch = mujoco.batch.Batch(model, num_envs, nthread=threads, persistent=True)
    ctrl, qpos, qvel = batch.bind("ctrl"), batch.bind("qpos"), batch.bind("qvel")
    actions = uniform_batches(np.random.default_rng(0), (num_envs, model.nu))

    def step(i):
        ctrl[:] = actions[i % ACTION_BATCHES]
        batch.step(nstep=frame_skip)
        return np.concatenate([qpos, qvel], axis=1)  # a state to hand to a policy

    return median_rate(step, num_envs, max(10, env_steps // num_envs), repeats)


def mujoco_rollout(scenario, partition, num_envs, threads, frame_skip, env_steps, repeats):
    model = model_file(scenario, partition)[2]
    datas = [mujoco.MjData(model) for _ in range(threads)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.tile(np.concatenate([[0.0], model.qpos0, np.zeros(mujoco.mj_stateSize(model, spec) - 1 - model.nq)]), (num_envs, 1))
    rng = np.random.default_rng(0)
    controls = [np.repeat(a[:, None, :], frame_skip, axis=1).astype(np.float64)
                for a in uniform_batches(rng, (num_envs, model.nu))]
    with mujoco.rollout.Rollout(nthread=threads) as rollout:
        def step(i):
            nonlocal state
            states, _ = rollout.rollout(model, datas, state, controls[i % ACTION_BATCHES])
            state = states[:, -1]

        return median_rate(step, num_envs, max(10, env_steps // num_envs), repeats)


def mamujoco(scenario, partition, steps, repeats):
    from gymnasium_robotics import mamujoco_v1

    env = mamujoco_v1.parallel_env(scenario, partition, agent_obsk=1)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [{a: rng.uniform(-1, 1, env.action_space(a).shape).astype(np.float32) for a in env.possible_agents}
               for _ in range(ACTION_BATCHES)]

    def step(i):
        _, _, terminated, truncated, _ = env.step(actions[i % ACTION_BATCHES])
        if any(terminated.values()) or any(truncated.values()):
            env.reset()
        env.state()

    return median_rate(step, 1, steps, repeats)


def envpool_rate(scenario, num_envs, threads, env_steps, repeats):
    try:
        import envpool
    except ImportError:
        return None
    env = envpool.make(f"{scenario}-v5", env_type="gymnasium", num_envs=num_envs, batch_size=num_envs, num_threads=threads)
    env.reset()
    actions = uniform_batches(np.random.default_rng(0), (num_envs, env.action_space.shape[0]))
    return median_rate(lambda i: env.step(actions[i % ACTION_BATCHES]), num_envs, max(10, env_steps // num_envs), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-steps", type=int, default=4096, help="env-steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per figure (median)")
    parser.add_argument("--scenarios", nargs="+", default=[c[0] for c in CASES], help="scenarios of CASES to run")
    args = parser.parse_args()
    rows, notes = [], []
    for scenario, partition in [c for c in CASES if c[0] in args.scenarios]:
        with make(scenario, partition) as probe:
            frame_skip = probe.frame_skip
        steps = args.env_steps // STEP_SHARE[scenario]
        limit = {}

        def add(name, n, t, rate, ratio=None):
            ratio = rate / limit[(64, t)] if ratio is None else ratio
            rows.append([f"{scenario} {partition}", name, n, t, f"{rate:,.0f}", f"{ratio:.2f}"])

        for t in THREADS:
            for n in NUM_ENVS:
                # Our env and the limit timed in alternation, so that the machine's load
                # drifts alike for both; the ratio is the median of the paired ratios.
                plain, batched, mine = [], [], []
                for _ in range(args.repeats):
                    rates = cpp_rates(scenario, partition, n, t, steps)
                    plain.append(rates["plain"])
                    batched.append(rates["batched"])
                    mine.append(ours(scenario, partition, n, t, steps))
                limit[(n, t)] = statistics.median(plain)
                add("plain C++ mj_step loop (limit)", n, t, limit[(n, t)], 1.0)
                add("hapo env, Python API (obs, state, reward)", n, t, statistics.median(mine),
                    statistics.median([m / p for m, p in zip(mine, plain)]))
                add("hapo BatchedEnv from C++ (1 agent)", n, t, statistics.median(batched),
                    statistics.median([b / p for b, p in zip(batched, plain)]))
            add("mujoco.batch.Batch, Python loop (step only)", 64, t,
                mujoco_batch(scenario, partition, 64, t, frame_skip, steps, args.repeats))
            add("mujoco.rollout, Python loop (step only)", 64, t,
                mujoco_rollout(scenario, partition, 64, t, frame_skip, steps, args.repeats))
            if scenario.startswith("ManySegment"):
                continue  # envpool has Gymnasium's tasks only
            rate = envpool_rate(scenario, 64, t, steps, args.repeats)
            if rate is None:
                notes.append(f"envpool not installed: its {scenario} rows are skipped (pip install envpool)")
            else:
                add(f"envpool {scenario}-v5 sync (1 agent)", 64, t, rate)
        # mamujoco_v1 ships no 17x1 Humanoid: its 9|8 steps the same physics.
        ref_partition = "9|8" if (scenario, partition) == ("Humanoid", "17x1") else partition
        add(f"mamujoco_v1 {ref_partition}, Python loop", 1, 1, mamujoco(scenario, ref_partition, steps // 4, args.repeats))
    print_table(
        f"Env-steps/s, median of {args.repeats} blocks; ratio to the plain C++ loop at the same "
        "threads (same num_envs for hapo rows, paired in time; 64 envs for peers)",
        ["scenario", "implementation", "num_envs", "threads", "env-steps/s", "ratio to limit"],
        rows,
    )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
