"""Inputs that used to end the process or return garbage from the C++ envs.

Each case runs in a subprocess, where a crash shows as a signal or an exit status (and
MuJoCo's default error handler, which prints and exits, as exit status 1) instead of
taking pytest down with it. The snippet checks the error and that the process can still
make and step an env afterwards.
"""

import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import re, resource
import numpy as np
from hapo.envs import make

def raises(error, pattern, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except error as err:
        assert re.search(pattern, str(err)), f"{type(err).__name__}: {err}"
        print(f"{type(err).__name__}: {err}")
    else:
        raise AssertionError(f"no {error.__name__}")

def limit_address_space(extra_mib):
    vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (vm + (extra_mib << 20), hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (hard, hard))

def still_works():
    with make("HalfCheetah", "6x1", num_envs=2, num_threads=2) as env:
        env.reset()
        env.step([np.zeros((2, 1), np.float32)] * 6)
    print("still works")
"""


def run(code: str) -> str:
    """stdout of `code` run after PRELUDE in a fresh Python; fails on a non-zero exit."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run(
        [sys.executable, "-P", "-c", PRELUDE + textwrap.dedent(code)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_absurd_num_envs_is_a_memory_error_before_allocating():
    out = run("""
        limit_address_space(8192)  # without the estimate, allocating 10**9 envs would take the machine's memory
        raises(MemoryError, r"^num_envs = 1000000000 needs at least \\d.* TiB of memory \\(.* per env: the model's mjData and the env's buffers\\), more than this machine's",
               make, "HalfCheetah", "6x1", num_envs=10**9)
        still_works()
    """)
    assert out.endswith("still works\n")


def test_absurd_num_envs_is_one_line_from_hapo_train(tmp_path):
    run(f"""
        import contextlib, io
        from hapo.cli import main
        limit_address_space(8192)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                main(["--scenario", "HalfCheetah", "--agent-conf", "6x1", "--set", "env.num_envs=1000000000",
                      "--log-dir", {str(tmp_path)!r}, "--no-progress"])
            except SystemExit as exit:
                assert exit.code == 2, exit.code
        last = err.getvalue().splitlines()[-1]
        assert "Traceback" not in err.getvalue() and last.startswith("hapo-train: error: num_envs = 1000000000 needs at least"), err.getvalue()
    """)


def test_mujoco_allocation_failure_is_a_memory_error():
    # 2000 envs fit this machine's memory, but not 1 GiB more of address space: each mjData reserves its arena.
    out = run("""
        lift = limit_address_space(1024)
        raises(MemoryError, r"^MuJoCo: Could not allocate memory for the physics of env \\d+ of num_envs = 2000$",
               make, "HalfCheetah", "6x1", num_envs=2000)
        lift()
        still_works()
    """)
    assert out.endswith("still works\n")


def test_num_threads_is_bounded_and_says_why():
    run("""
        raises(ValueError, r"num_threads must be in \\[1, 1024\\], got 100000: threads beyond the machine's cores only add switching",
               make, "HalfCheetah", "6x1", num_envs=1, num_threads=100000)
        still_works()
    """)


def test_a_thread_that_cannot_start_stops_the_others_cleanly():
    # Each thread reserves a stack of megabytes: 200 MiB of address space starts only some of 999.
    out = run("""
        lift = limit_address_space(200)
        raises(RuntimeError, r"^the thread pool started \\d+ of its 999 worker threads, then: ",
               make, "HalfCheetah", "6x1", num_envs=1, num_threads=1000)
        lift()
        still_works()
    """)
    assert out.endswith("still works\n")


@pytest.mark.parametrize("action", ["1e20", "np.finfo(np.float32).max"])
def test_an_action_whose_cost_float32_cannot_hold_is_an_error_not_inf(action):
    # The control cost, 0.1 * 6 * a^2, is computed in double: 6e39 for 1e20, beyond float32.
    run(f"""
        env = make("HalfCheetah", "6x1", num_envs=3)
        env.reset()
        actions = [np.zeros((3, 1), np.float32) for _ in range(6)]
        actions[2][1] = {action}
        raises(ValueError, r"^the step gave env 1 a reward of -\\d.*e\\+\\d+, beyond float32's range \\(\\|x\\| <= 3.4e\\+38\\); its largest \\|action\\| was",
               env.step, actions)
        raises(RuntimeError, r"call reset\\(\\) before the first step\\(\\), and after a call that raised", env.step, actions)
        env.reset()
        actions[2][1] = 1e18  # 6e35: float32 holds it, as Gymnasium's float64 reward does
        reward = env.step(actions)[2]
        assert np.isfinite(reward).all() and np.isclose(reward[1], -0.1 * 1e36, rtol=1e-3), reward
        still_works()
    """)


def test_set_state_refuses_non_finite_qpos_and_qvel():
    run("""
        env = make("HalfCheetah", "6x1", num_envs=2)
        env.reset()
        obs = [o.copy() for o in env.reset()[0]]
        qpos, qvel = env.get_qpos(1), env.get_qvel(1)
        bad = qpos.copy(); bad[3] = np.nan
        raises(ValueError, r"^qpos must be finite, got nan at index 3$", env.set_state, 1, bad, qvel)
        bad = qvel.copy(); bad[0] = -np.inf
        raises(ValueError, r"^qvel must be finite, got -inf at index 0$", env.set_state, 1, qpos, bad)
        assert all((a == b).all() for a, b in zip(obs, env._obs)) and (env.get_qpos(1) == qpos).all()
        still_works()
    """)


def test_a_snapshot_of_another_task_is_refused_naming_both():
    run("""
        cheetah = make("HalfCheetah", "2x3", num_envs=1)
        cheetah.reset()
        walker = make("Walker2d", "2x3", num_envs=1)
        walker.reset()
        snapshot = cheetah.snapshot()
        raises(ValueError, r"^the snapshot is of HalfCheetah \\(half_cheetah.xml: nq 9, nv 9, nu 6; actions 3\\+3, .*\\), this env is Walker2d \\(walker2d_v5.xml: nq 9, nv 9, nu 6; actions 3\\+3, ",
               walker.restore, snapshot)
        other = make("HalfCheetah", "3x2", num_envs=1).snapshot()
        raises(ValueError, r"snapshot is of HalfCheetah \\(.*actions 2\\+2\\+2.*this env is HalfCheetah \\(.*actions 3\\+3", cheetah.restore, other)
        del snapshot["model"]  # a snapshot made before snapshots named their model: checked by sizes only
        make("HalfCheetah", "2x3", num_envs=1).restore(snapshot)
    """)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ("make('HalfCheetah', '6x1', num_envs=2**31)", ValueError, r"num_envs must be in [1, 2**31), got 2147483648"),
        ("make('HalfCheetah', '6x1', num_threads=2**31)", ValueError, r"num_threads must be in [1, 2**31), got 2147483648"),
        ("make('HalfCheetah', '6x1', seed=2**64)", ValueError, r"seed must be in [0, 2**64), got 18446744073709551616"),
        ("make('HalfCheetah', '6x1', max_episode_steps=2**31)", ValueError, r"max_episode_steps must be in [1, 2**31), got 2147483648"),
        ("make('HalfCheetah', '6x1', agent_obsk=2**31)", ValueError, r"agent_obsk must be in [0, 2**31), got 2147483648"),
        ("make('HalfCheetah', '6x1').reset(seed=2**64)", ValueError, r"seed must be in [0, 2**64), got 18446744073709551616"),
        ("make('HalfCheetah', '6x1').get_qvel(2**40)", IndexError, r"env index must be in [0, 1), got 1099511627776"),
        ("make('HalfCheetah', '6x1').get_qpos(-2**70)", IndexError, r"env index must be in [0, 1), got -1180591620717411303424"),
        ("make('HalfCheetah', '6x1').set_state(2**40, np.zeros(9), np.zeros(9))", IndexError, r"env index must be in [0, 1), got 1099511627776"),
        ("make('HalfCheetah', '6x1').get_qvel(0.0)", TypeError, r"env index must be an int, got float 0.0"),
    ],
)
def test_integers_beyond_cpp_types_name_the_argument_and_the_range(call, error, message):
    out = run(f"""
        raises({error.__name__}, "^" + re.escape({message!r}) + "$", lambda: {call})
    """)
    assert out == f"{error.__name__}: {message}\n"
