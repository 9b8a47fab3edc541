"""Batched multi-agent environments that follow the protocol of docs/env_api.md.

The MuJoCo environments have a C++ core; small pure-Python test environments live in
hapo.envs.toy.
"""

from hapo.envs.catalog import TaskInfo, list_tasks, print_task_table, task_table
from hapo.envs.env import BatchedMujocoEnv, make
from hapo.envs.partitions import SCENARIOS
from hapo.envs.pettingzoo_env import MujocoParallelEnv, pettingzoo_env

__all__ = [
    "BatchedMujocoEnv",
    "MujocoParallelEnv",
    "SCENARIOS",
    "TaskInfo",
    "list_tasks",
    "make",
    "pettingzoo_env",
    "print_task_table",
    "task_table",
]
