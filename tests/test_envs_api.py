"""The batched env's protocol: spaces, auto-reset, seeding, threads, snapshots, bad input."""

import threading

import gymnasium
import numpy as np
import pytest
from gymnasium_robotics import mamujoco_v1

from hapo.envs import SCENARIOS, make


def random_actions(env, rng, scale=1.0):
    return [rng.uniform(-scale, scale, (env.num_envs, n)).astype(np.float32) for n in env.action_sizes]


def rollout(env, steps, seed=0, scale=1.5):
    """Copies of every output of `steps` steps with actions drawn from `seed`."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        obs, state, reward, terminated, truncated, info = env.step(random_actions(env, rng, scale))
        out.append(
            [o.copy() for o in obs]
            + [state.copy(), reward.copy(), terminated.copy(), truncated.copy(), info["final_state"].copy()]
        )
    return out


def assert_rollouts_equal(a, b):
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b):
        for x, y in zip(step_a, step_b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("scenario,partition", [("Ant", "2x4d"), ("Hopper", "3x1"), ("Walker2d", "2x3")])
def test_spaces_match_reference(scenario, partition):
    ref = mamujoco_v1.parallel_env(scenario, partition, agent_obsk=1)
    with make(scenario, partition, num_envs=3) as env:
        assert env.agents == ref.possible_agents
        assert env.action_kind == "continuous"
        assert env.max_episode_steps == 1000
        assert env.state_size == ref.state().shape[0]
        for i, agent in enumerate(env.agents):
            np.testing.assert_array_equal(env.action_low[i], ref.action_space(agent).low)
            np.testing.assert_array_equal(env.action_high[i], ref.action_space(agent).high)
        obs, state, info = env.reset()
        assert [o.shape for o in obs] == [(3, n) for n in env.obs_sizes]
        assert all(o.dtype == np.float32 for o in obs) and state.dtype == np.float32
        assert state.shape == (3, env.state_size) and info == {}
        _, _, reward, terminated, truncated, info = env.step(random_actions(env, np.random.default_rng(0)))
        assert reward.shape == (3,) and reward.dtype == np.float32
        assert terminated.dtype == bool and truncated.dtype == bool
        assert env.dt == gymnasium.make(f"{scenario}-v5").unwrapped.dt


def test_auto_reset_keeps_final_obs_and_starts_a_new_episode():
    env = make("Hopper", "3x1", num_envs=8, seed=1)
    env.reset()
    rng = np.random.default_rng(0)
    init_qpos = gymnasium.make("Hopper-v5").unwrapped.init_qpos
    ended = 0
    for _ in range(200):
        obs, state, _, terminated, truncated, info = env.step(random_actions(env, rng, 2.0))
        done = terminated | truncated
        # Where nothing ended, final_* equal the outputs.
        np.testing.assert_array_equal(info["final_state"][~done], state[~done])
        for o, f in zip(obs, info["final_obs"]):
            np.testing.assert_array_equal(f[~done], o[~done])
        for k in np.flatnonzero(done):
            ended += 1
            assert not np.array_equal(info["final_state"][k], state[k])
            # A fresh episode: Gymnasium's reset noise, U(-5e-3, 5e-3) around init_qpos.
            assert np.abs(env.get_qpos(k) - init_qpos).max() <= 5e-3
            assert np.abs(env.get_qvel(k)).max() <= 5e-3
    assert ended >= 8


def test_time_limit_counts_from_each_reset():
    env = make("HalfCheetah", "2x3", num_envs=2, max_episode_steps=7)
    env.reset()
    rng = np.random.default_rng(0)
    flags = [env.step(random_actions(env, rng))[4].copy() for _ in range(21)]
    expected = [(t + 1) % 7 == 0 for t in range(21)]
    assert [bool(f[0]) for f in flags] == expected and [bool(f[1]) for f in flags] == expected


def test_reset_noise_has_gymnasium_distribution():
    # HalfCheetah: qpos = init + U(-0.1, 0.1), qvel = 0.1 * N(0, 1).
    env = make("HalfCheetah", None, num_envs=400, seed=5)
    env.reset()
    init_qpos = gymnasium.make("HalfCheetah-v5").unwrapped.init_qpos
    qpos = np.stack([env.get_qpos(k) for k in range(400)]) - init_qpos
    qvel = np.stack([env.get_qvel(k) for k in range(400)])
    assert np.abs(qpos).max() <= 0.1
    assert abs(qpos.std() - 0.1 / np.sqrt(3)) < 0.003 and abs(qpos.mean()) < 0.003
    assert abs(qvel.std() - 0.1) < 0.004 and abs(qvel.mean()) < 0.004


def test_seeding_is_reproducible_per_env():
    def run(num_envs, seed):
        env = make("Ant", "4x2", num_envs=num_envs, seed=seed)
        env.reset()
        return [env.get_qpos(k) for k in range(num_envs)]

    a, b, c = run(3, 7), run(5, 7), run(3, 8)
    for k in range(3):
        np.testing.assert_array_equal(a[k], b[k])  # env k does not depend on the batch size
        assert not np.array_equal(a[k], c[k])
    assert not np.array_equal(a[0], a[1])

    env = make("Ant", "4x2", num_envs=2, seed=7)
    env.reset()
    env.step(random_actions(env, np.random.default_rng(0)))
    env.reset(seed=7)  # re-seeding restarts the streams
    np.testing.assert_array_equal(env.get_qpos(1), a[1])


def test_results_do_not_depend_on_thread_count():
    runs = []
    for threads in (1, 2, 3):
        env = make("Hopper", "3x1", num_envs=7, num_threads=threads, seed=2)
        env.reset()
        runs.append(rollout(env, 120, scale=2.0))
    assert sum(step[-3].sum() for step in runs[0]) >= 3  # through terminations
    assert_rollouts_equal(runs[0], runs[1])
    assert_rollouts_equal(runs[0], runs[2])


@pytest.mark.parametrize("scenario,partition", [("Ant", "2x4"), ("Walker2d", "2x3")])
def test_snapshot_restore_resumes_exactly(scenario, partition):
    env = make(scenario, partition, num_envs=4, num_threads=2, seed=4)
    env.reset()
    rollout(env, 30, seed=1)
    snap = env.snapshot()
    kept_obs = [o.copy() for o in env._obs]
    first = rollout(env, 80, seed=2)
    assert sum(step[-3].sum() for step in first) >= 1  # through terminations (RNG used)

    obs, _ = env.restore(snap)
    for o, k in zip(obs, kept_obs):
        np.testing.assert_array_equal(o, k)
    assert_rollouts_equal(first, rollout(env, 80, seed=2))

    # A checkpoint resumes in a fresh process-like env made with the same arguments.
    other = make(scenario, partition, num_envs=4, num_threads=1, seed=99)
    other.restore(snap)
    assert_rollouts_equal(first, rollout(other, 80, seed=2))


def test_set_state_reproduces_reference_observation():
    ref = mamujoco_v1.parallel_env("Ant", "2x4", agent_obsk=1)
    ref.reset(seed=0)
    ref.step({a: np.full(4, 0.5, np.float32) for a in ref.possible_agents})
    u = ref.single_agent_env.unwrapped
    qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
    u.set_state(qpos, qvel)
    env = make("Ant", "2x4", num_envs=3)
    obs, state, _ = env.reset()
    env.set_state(2, qpos, qvel)
    np.testing.assert_array_equal(env.get_qpos(2), qpos)
    np.testing.assert_array_equal(env.get_qvel(2), qvel)
    for i, agent in enumerate(ref.possible_agents):
        np.testing.assert_array_equal(obs[i][2], ref._get_obs()[agent].astype(np.float32))
    np.testing.assert_array_equal(state[2], ref.state().astype(np.float32))


def test_repr_and_close():
    with make("HalfCheetah", "6x1", num_envs=4, num_threads=2) as env:
        text = repr(env)
        for part in ("HalfCheetah", "6x1", "num_envs=4", "obs_sizes=(9, 9, 8, 9, 9, 8)", "state_size=17"):
            assert part in text
    assert env.closed and "closed" in repr(env)
    with pytest.raises(RuntimeError, match="closed"):
        env.step([np.zeros((4, 1), np.float32)] * 6)
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    env.close()  # idempotent


def test_out_of_range_actions_are_clamped_by_mujoco_and_charged_in_full():
    # As Gymnasium: the control cost sees the action as given; MuJoCo clamps ctrl.
    env = make("HalfCheetah", None, num_envs=2)
    env.reset()
    snap = env.snapshot()
    big = np.array([[5.0] * 6, [1.0] * 6], np.float32)
    _, state_big, _, _, _, info = env.step([big])
    ctrl_big = info["reward_ctrl"].copy()
    state_big = state_big.copy()
    env.restore(snap)
    _, state_one, _, _, _, info = env.step([np.array([[1.0] * 6, [1.0] * 6], np.float32)])
    np.testing.assert_array_equal(state_big, state_one)
    np.testing.assert_allclose(ctrl_big, [-0.1 * 6 * 25, -0.1 * 6], rtol=1e-6)


def good_actions(env):
    return [np.zeros((env.num_envs, n), np.float32) for n in env.action_sizes]


@pytest.mark.parametrize(
    "mutate,error,match",
    [
        (lambda a: a[:1], ValueError, r"list of 2 arrays \(one per agent\), got 1"),
        (lambda a: [a[0], a[1][:, :2]], ValueError, r"actions\[1\] must have shape \(3, 3\) = \(num_envs, action_sizes\[1\]\), got \(3, 2\)"),
        (lambda a: [a[0], a[1][None]], ValueError, r"actions\[1\] must have shape \(3, 3\)"),
        (lambda a: [a[0].astype(np.float64), a[1]], TypeError, r"actions\[0\] must have dtype float32, got float64"),
        (lambda a: [a[0].tolist(), a[1]], TypeError, r"actions\[0\] must be a NumPy array of dtype float32, got <class 'list'>"),
        (lambda a: [a[0], np.where(np.eye(3, dtype=bool), np.nan, a[1]).astype(np.float32)], ValueError, r"actions\[1\] must be finite, got nan for env 0"),
        (lambda a: [a[0], np.full((3, 3), np.inf, np.float32)], ValueError, r"actions\[1\] must be finite, got inf"),
        (lambda a: np.zeros((3, 6), np.float32), TypeError, "actions must be a list of 2 arrays"),
    ],
)
def test_bad_actions_are_named(mutate, error, match):
    env = make("HalfCheetah", "2x3", num_envs=3)
    env.reset()
    with pytest.raises(error, match=match):
        env.step(mutate(good_actions(env)))
    env.step(good_actions(env))  # still usable


def test_non_contiguous_actions_are_accepted():
    env = make("HalfCheetah", "2x3", num_envs=3)
    env.reset()
    snap = env.snapshot()
    wide = np.random.default_rng(0).uniform(-1, 1, (3, 6)).astype(np.float32)
    env.step([wide[:, :3], wide[:, 3:]])
    state = env._state.copy()
    env.restore(snap)
    env.step([wide[:, :3].copy(), wide[:, 3:].copy()])
    np.testing.assert_array_equal(env._state, state)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(scenario="Cheetah"), ValueError, "unknown scenario 'Cheetah', expected one of: Ant, CoupledHalfCheetah, HalfCheetah, Hopper, Humanoid, HumanoidStandup, InvertedDoublePendulum, InvertedPendulum, ManySegmentAnt, ManySegmentSwimmer, Pusher, Reacher, Swimmer, Walker2d"),
        (dict(scenario="InvertedPendulum", partition="2x1"), ValueError, r"^InvertedPendulum has one agent only \(mamujoco_v1 splits it no further\): partition must be None, got '2x1'$"),
        (dict(scenario="Pusher", partition="7x1"), ValueError, r"unknown partition '7x1' for Pusher, expected one of: 3p \(or None\)"),
        (dict(partition="4x2"), ValueError, r"unknown partition '4x2' for HalfCheetah, expected one of: 2x3, 3x2, 6x1 \(or None\)"),
        (dict(scenario="ManySegmentSwimmer", partition=None), ValueError, r"unknown partition None for ManySegmentSwimmer, expected 'AxS' \(A agents of S segments each, e.g. 10x2"),
        (dict(scenario="ManySegmentAnt", partition="2x0"), ValueError, r"unknown partition '2x0' for ManySegmentAnt, expected 'AxS'"),
        (dict(scenario="ManySegmentSwimmer", partition="1x1"), ValueError, r"ManySegmentSwimmer needs at least 2 segments, got 1x1"),
        (dict(num_envs=0), ValueError, r"num_envs must be in \[1, 2\*\*31\), got 0"),
        (dict(num_threads=0), ValueError, r"num_threads must be in \[1, 2\*\*31\), got 0"),
        (dict(num_envs=2.0), TypeError, "num_envs must be an int, got float 2.0"),
        (dict(agent_obsk=-1), ValueError, r"agent_obsk must be in \[0, 2\*\*31\), got -1"),
        (dict(seed=-3), ValueError, r"seed must be in \[0, 2\*\*64\), got -3"),
        (dict(max_episode_steps=0), ValueError, r"max_episode_steps must be in \[1, 2\*\*31\), got 0"),
    ],
)
def test_bad_make_arguments_are_named(kwargs, error, match):
    args = dict(scenario="HalfCheetah", partition="6x1") | kwargs
    with pytest.raises(error, match=match):
        make(args.pop("scenario"), args.pop("partition"), **args)


def test_bad_state_access_is_named():
    env = make("Hopper", "3x1", num_envs=2)
    env.reset()
    with pytest.raises(IndexError, match=r"env index must be in \[0, 2\), got 2"):
        env.get_qpos(2)
    with pytest.raises(ValueError, match="qpos must be a 1-D array of 6 numbers"):
        env.set_state(0, np.zeros(5), np.zeros(6))
    with pytest.raises(KeyError, match="snapshot has no 'physics'"):
        env.restore({})
    other = make("Hopper", "3x1", num_envs=3).snapshot()
    with pytest.raises(ValueError, match="the snapshot holds 3 envs, this batch has 2"):
        env.restore(other)
    # Another partition of the same model: named by identity, not by a missing key.
    with pytest.raises(ValueError, match=r"the snapshot is of Hopper .*actions 3, .*this env is Hopper .*actions 1\+1\+1"):
        env.restore(make("Hopper", None, num_envs=2).snapshot())


def test_step_before_reset_is_an_error():
    env = make("Walker2d", "2x3", num_envs=2)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before the first step\(\)"):
        env.step(good_actions(env))


def test_two_threads_stepping_one_env_get_a_clear_error():
    env = make("Ant", "4x2", num_envs=128, num_threads=1)
    env.reset()
    errors, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                env.step(good_actions(env))
            except RuntimeError as err:
                errors.append(str(err))

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(400):
        if errors:
            break
        threading.Event().wait(0.005)
    stop.set()
    for t in threads:
        t.join()
    assert errors and all("already running a call from another thread" in e for e in errors)
    env.step(good_actions(env))  # usable afterwards


def test_every_scenario_has_its_task():
    from hapo import _core

    assert {s.task for s in SCENARIOS.values()} <= set(_core.env_task_names())


def test_readme_environment_example_runs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)\n```", text, flags=re.S) if "from hapo.envs import make" in b)
    scope = {}
    exec(example, scope)
    assert scope["reward"].shape == (64,) and scope["state"].shape == (64, 17)


def test_readme_mamujoco_port_runs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)\n```", text, flags=re.S)
    before = next(b for b in blocks if "mamujoco_v1.parallel_env" in b)
    after = next(b for b in blocks if 'make("Humanoid", "9|8"' in b)
    scopes = [{}, {}]
    exec(before, scopes[0])
    exec(after, scopes[1])
    ref, ours = scopes[0]["env"], scopes[1]["env"]
    assert ours.agents == ref.possible_agents
    for i, agent in enumerate(ours.agents):
        assert scopes[1]["obs"][i].shape == (64, ref.observation_space(agent).shape[0])
    assert scopes[1]["state"].shape == (64, scopes[0]["state"].shape[0])


def test_mujoco_timer_callback_is_restored_after_our_calls():
    # Our calls pause MuJoCo's global mjcb_time (set by the mujoco package at import) and
    # must hand it back unchanged.
    import ctypes
    import os

    import mujoco

    lib = ctypes.CDLL(os.path.join(os.path.dirname(mujoco.__file__), f"libmujoco.so.{mujoco.__version__}"))
    callback = ctypes.c_void_p.in_dll(lib, "mjcb_time")
    before = callback.value
    assert before is not None
    env = make("Hopper", "3x1", num_envs=4, num_threads=2)
    env.reset()
    env.step(good_actions(env))
    assert callback.value == before
