"""Batched multi-agent environments that follow the protocol of docs/env_api.md.

The MuJoCo environments have a C++ core; small pure-Python test environments live in
hapo.envs.toy.
"""

from hapo.envs.env import BatchedMujocoEnv, make
from hapo.envs.partitions import SCENARIOS

__all__ = ["BatchedMujocoEnv", "SCENARIOS", "make"]
