"""Fixtures shared by several test files."""

from types import SimpleNamespace

import mujoco
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


class DenseTendonJacobian:
    """mjData with ten_J as the dense (ntendon x nv) matrix that the reference's
    CoupledHalfCheetah indexes (`ten_J[0][9:11]`), as MuJoCo's Python bindings gave it
    before MuJoCo stored it sparse; everything else is the mjData's own."""

    def __init__(self, data: mujoco.MjData):
        self._data = data

    def __getattr__(self, name):
        return getattr(self._data, name)

    @property
    def ten_J(self) -> np.ndarray:
        model = self._data.model
        dense = np.zeros((model.ntendon, model.nv))
        mujoco.mju_sparse2dense(dense, self._data.ten_J, model.ten_J_rownnz, model.ten_J_rowadr, model.ten_J_colind)
        return dense


@pytest.fixture
def mamujoco_dense_ten_j(monkeypatch):
    """Gymnasium-Robotics' CoupledHalfCheetah raises IndexError under MuJoCo 4, whose ten_J
    is sparse: while the test runs, its observations read the dense view instead."""
    from gymnasium_robotics.envs.multiagent_mujoco import coupled_half_cheetah, mujoco_multi

    build_obs = mujoco_multi.build_obs
    get_obs = coupled_half_cheetah.CoupledHalfCheetahEnv._get_obs

    def dense_build_obs(data, *args):
        return build_obs(DenseTendonJacobian(data) if isinstance(data, mujoco.MjData) else data, *args)

    monkeypatch.setattr(mujoco_multi, "build_obs", dense_build_obs)
    monkeypatch.setattr(
        coupled_half_cheetah.CoupledHalfCheetahEnv, "_get_obs", lambda env: get_obs(SimpleNamespace(data=DenseTendonJacobian(env.data)))
    )
