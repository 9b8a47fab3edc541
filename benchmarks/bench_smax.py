"""SMAX: hapo's batched wrapper against JaxMARL's own batched step, in the same run.

Env steps per second (battles x steps / wall time) on 3s5z, the allies acting from a fixed
table of random available actions (no policy), the enemies by JaxMARL's heuristic:

- "JaxMARL jit(vmap(step))": JaxMARL's `MultiAgentEnv.step` (auto-reset included) vmapped
  over the battles and jitted, actions as a dict of JAX arrays, outputs left in JAX
  (`block_until_ready`): the limit the wrapper adds to.
- "hapo SmaxEnv.step": hapo's wrapper: NumPy actions in, checked; per-agent NumPy views of the
  observations, state, masks, final observations and the win flags out (one copy each).

Run: python benchmarks/bench_smax.py [--map 3s5z] [--envs 64 512] [--steps 200] [--repeats 5]
"""

import argparse
import contextlib
import io

import numpy as np
from _timing import interleaved_medians, print_table

from hapo.envs import smax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", default="3s5z")
    parser.add_argument("--envs", nargs="+", type=int, default=[64, 512])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):  # jaxmarl prints while it imports
        import jax
        import jax.numpy as jnp
        from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

    rows = []
    for n in args.envs:
        ours = smax.make(args.map, num_envs=n, seed=0)
        _, _, info = ours.reset()
        rng = np.random.default_rng(0)
        # A fixed table of actions, each available at the start (later unavailable ones are
        # treated by SMAX as it treats any action of a dead unit or an out-of-range attack).
        table = [[np.array([rng.choice(np.flatnonzero(m[k])) for k in range(n)]) for m in info["action_mask"]] for _ in range(16)]

        ref = HeuristicEnemySMAX(scenario=map_name_to_scenario(args.map))
        step = jax.jit(jax.vmap(ref.step))
        keys = jax.random.split(jax.random.PRNGKey(0), n)
        _, states = jax.jit(jax.vmap(ref.reset))(keys)
        ref_table = [{a: jnp.asarray(actions[i]) for i, a in enumerate(ref.agents)} for actions in table]

        def run_ref():
            nonlocal states, keys
            for t in range(args.steps):
                keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
                obs, states, reward, dones, _ = step(keys, states, ref_table[t % 16])
            jax.block_until_ready((obs, states, reward, dones))

        def run_ours():
            for t in range(args.steps):
                ours.step(table[t % 16])

        # The first call of each compiles (interleaved_medians' warm-up).
        medians = interleaved_medians({"JaxMARL jit(vmap(step))": run_ref, "hapo SmaxEnv.step": run_ours}, args.repeats)
        limit = n * args.steps / medians["JaxMARL jit(vmap(step))"]
        for name, seconds in medians.items():
            speed = n * args.steps / seconds
            rows.append([args.map, n, name, f"{speed:,.0f}", f"{speed / limit:.2f}"])
    print_table(
        f"SMAX {args.map}: env steps/s, {args.steps} steps per repeat, median of {args.repeats} (interleaved)",
        ["map", "battles", "implementation", "env steps/s", "vs JaxMARL"],
        rows,
    )


if __name__ == "__main__":
    main()
