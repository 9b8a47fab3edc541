"""Batched multi-agent MuJoCo environments with a C++ core (see docs/env_api.md)."""

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
