"""Fixtures shared by several test files."""

import numpy as np
import pytest

from hapo.envs import toy


@pytest.fixture(scope="session")
def toy_reach_returns() -> tuple[float, float]:
    """(idle, optimum): the mean returns on ToyReach 2+1 (200 envs, seed 11) of doing nothing and of
    the optimal controller, between which a trained team's deterministic return should lie."""

    def controller_return(choose):
        env = toy.ToyReach("2+1", num_envs=200, seed=11)
        obs, _, _ = env.reset()
        total = np.zeros(200)
        for _ in range(env.HORIZON):
            obs, _, reward, *_ = env.step(choose(env, obs))
            total += reward
        return total.mean()

    idle = controller_return(lambda env, obs: [np.zeros((200, k), np.float32) for k in env.action_sizes])
    return idle, controller_return(lambda env, obs: env.optimal_actions(obs))


def pytest_collection_modifyitems(items):
    """The SMAX tests run last: JAX, which they load, starts threads that make any later
    os.fork in this process unsafe (Ray and the video tests fork), and says so with a warning."""
    items.sort(key=lambda item: item.path.name == "test_envs_smax.py")
