"""Batched multi-agent MuJoCo environments with a C++ core (see docs/env_api.md)."""

from hapo.envs.env import BatchedMujocoEnv, make
from hapo.envs.partitions import SCENARIOS

__all__ = ["BatchedMujocoEnv", "SCENARIOS", "make"]
