"""The PettingZoo view: PettingZoo's own API test, and equality with mamujoco_v1."""

import numpy as np
import pytest
from gymnasium_robotics import mamujoco_v1
from pettingzoo.test import parallel_api_test

from hapo.envs import pettingzoo_env


@pytest.mark.parametrize(
    "scenario,partition",
    [("Hopper", "3x1"), ("Reacher", "2x1"), ("Humanoid", "9|8"), ("Pusher", "3p"), ("CoupledHalfCheetah", "1p1"),
     ("InvertedDoublePendulum", None)],
)
def test_passes_pettingzoo_parallel_api_test(scenario, partition):
    env = pettingzoo_env(scenario, partition)
    parallel_api_test(env, num_cycles=300)
    assert env.state_space.shape == env.state().shape


def test_steps_like_mamujoco():
    env = pettingzoo_env("Ant", "2x4", seed=1)
    ref = mamujoco_v1.parallel_env("Ant", "2x4", agent_obsk=1)
    obs, _ = env.reset()
    ref.reset(seed=0)
    ref.single_agent_env.unwrapped.set_state(env.env.get_qpos(0), env.env.get_qvel(0))
    ref_obs = ref._get_obs()
    assert env.possible_agents == ref.possible_agents
    rng = np.random.default_rng(0)
    for t in range(300):
        for agent in env.possible_agents:
            np.testing.assert_array_equal(obs[agent], ref_obs[agent].astype(np.float32))
            assert env.observation_space(agent).shape == ref.observation_space(agent).shape
        np.testing.assert_array_equal(env.state(), ref.state().astype(np.float32))
        if not env.agents:
            break
        actions = {a: rng.uniform(-1.5, 1.5, 4).astype(np.float32) for a in env.agents}
        obs, reward, terminated, truncated, info = env.step(actions)
        ref_obs, ref_reward, ref_terminated, ref_truncated, ref_info = ref.step(actions)
        assert terminated == ref_terminated and truncated == ref_truncated
        for agent in env.possible_agents:
            np.testing.assert_allclose(reward[agent], ref_reward[agent], rtol=3e-7, atol=1e-6)
            np.testing.assert_allclose(info[agent]["reward_ctrl"], ref_info[agent]["reward_ctrl"], rtol=3e-7)
    assert t < 299 and not env.agents  # the wide actions ended the episode


def test_bad_actions_are_named():
    env = pettingzoo_env("HalfCheetah", "2x3")
    env.reset(seed=0)
    with pytest.raises(KeyError, match=r"actions lack agents \['agent_1'\]"):
        env.step({"agent_0": np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match=r"actions lack agents \['agent_0'\]; name unknown agents \['agent0'\]"):
        env.step({"agent0": np.zeros(3, np.float32), "agent_1": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"the action of agent_1 must have shape \(3,\), got \(2,\)"):
        env.step({"agent_0": np.zeros(3), "agent_1": np.zeros(2)})
    with pytest.raises(ValueError, match="must be finite"):
        env.step({"agent_0": np.zeros(3), "agent_1": np.array([0.0, np.nan, 0.0])})
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
