import numpy as np
import pytest

from hapo.envs import toy


def random_actions(env, rng):
    if env.action_kind == "discrete":
        return [rng.integers(0, 2, env.num_envs) for _ in env.action_sizes]
    return [rng.uniform(-1.5, 1.5, (env.num_envs, k)).astype(np.float32) for k in env.action_sizes]


@pytest.mark.parametrize("scenario,conf", [("ToyReach", "2+1"), ("ToyReach", "3x2"), ("ToySplit", "4"), ("ToySplitMasked", "2")])
def test_protocol_shapes_and_auto_reset(scenario, conf):
    env = toy.make(scenario, conf, num_envs=5, seed=0)
    obs, state, info = env.reset()
    assert [o.shape for o in obs] == [(5, k) for k in env.obs_sizes]
    assert state.shape == (5, env.state_size) and state.dtype == np.float32
    rng = np.random.default_rng(0)
    for t in range(env.max_episode_steps):
        obs, state, reward, terminated, truncated, info = env.step(random_actions(env, rng))
        assert reward.shape == (5,) and reward.dtype == np.float32
        done = terminated | truncated
        assert done.all() == (t == env.max_episode_steps - 1)
    assert [f.shape for f in info["final_obs"]] == [o.shape for o in obs]
    assert info["final_state"].shape == state.shape


def test_reach_final_state_is_before_the_reset_and_obs_after():
    env = toy.ToyReach("1x2", num_envs=3, seed=1)
    obs, state, _ = env.reset()
    action = [np.full((3, 2), 0.5, np.float32)]
    for _ in range(env.HORIZON):
        previous = state.copy()
        obs, state, _, terminated, truncated, info = env.step(action)
    assert truncated.all() and not terminated.any()
    np.testing.assert_allclose(info["final_state"], previous + env.STEP * 0.5, atol=1e-6)
    np.testing.assert_array_equal(state, -env._target)  # new episodes start at the origin


def test_reach_optimal_actions_beat_perturbed_ones():
    def episode_return(perturb):
        env = toy.ToyReach("2+1", num_envs=200, seed=3)
        obs, _, _ = env.reset()
        total = np.zeros(200)
        for _ in range(env.HORIZON):
            obs, _, reward, *_ = env.step([a + perturb for a in env.optimal_actions(obs)])
            total += reward
        return total.mean()

    best = episode_return(0.0)
    assert all(episode_return(p) < best for p in (-0.2, 0.1, 0.3))


def test_split_rewards_follow_proposition_1():
    env = toy.ToySplit("4", num_envs=4, seed=0)
    env.reset()
    joint = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]])
    _, _, reward, terminated, _, _ = env.step(list(joint.T))
    np.testing.assert_array_equal(reward, [1, 1, 0, 0])
    assert terminated.all()


def test_split_masked_rejects_the_masked_action():
    env = toy.make("ToySplitMasked", "2", num_envs=2)
    _, _, info = env.reset()
    np.testing.assert_array_equal(info["action_mask"][0], [[True, True, False]] * 2)
    with pytest.raises(ValueError, match="action 2 is masked out"):
        env.step([np.array([2, 0]), np.array([0, 1])])


def test_snapshot_restore_replays_exactly():
    env = toy.ToyReach("2x1", num_envs=4, seed=5)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(random_actions(env, rng))
    snap = env.snapshot()
    actions = [random_actions(env, rng) for _ in range(15)]
    first = [env.step(a)[0][0].copy() for a in actions]
    env.restore(snap)
    second = [env.step(a)[0][0].copy() for a in actions]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: toy.make("ToyFly", "2"), "unknown toy scenario 'ToyFly'; toy scenarios: ToyReach"),
        (lambda: toy.make("ToySplit", "3"), "even number of agents, got '3'"),
        (lambda: toy.make("ToyReach", "2y1"), "must look like '2x1' or '2\\+1', got '2y1'"),
        (lambda: toy.make("ToyReach", "2x1").step([np.zeros((1, 1), np.float32)]), "list of 2 arrays, got 1"),
        (lambda: toy.make("ToyReach", "1x2").step([np.zeros((1, 3), np.float32)]), r"shape \(1, 2\), got \(1, 3\)"),
        (lambda: toy.make("ToyReach", "1x1").step([np.full((1, 1), np.nan, np.float32)]), "NaN or inf"),
        (lambda: toy.make("ToySplit", "2").step([np.array([0]), np.array([5])]), r"must lie in \[0, 2\)"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
