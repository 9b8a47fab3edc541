"""Batched multi-agent environments that follow the protocol of docs/env_api.md.

The MuJoCo environments have a C++ core; small pure-Python test environments live in
hapo.envs.toy; your own (a PettingZoo ParallelEnv, or a batched env) come in through
`register` or `env.entry_point` (docs/own_env.md).
"""

from hapo.envs.catalog import TaskInfo, list_tasks, print_task_table, task_table
from hapo.envs.env import BatchedMujocoEnv, make
from hapo.envs.partitions import SCENARIOS
from hapo.envs.parallel import EnvCheckError, ParallelEnvVector, check_parallel_env
from hapo.envs.pettingzoo_env import MujocoParallelEnv, pettingzoo_env
from hapo.envs.registry import register, registered, unregister

__all__ = [
    "BatchedMujocoEnv",
    "EnvCheckError",
    "MujocoParallelEnv",
    "ParallelEnvVector",
    "SCENARIOS",
    "TaskInfo",
    "check_parallel_env",
    "list_tasks",
    "make",
    "pettingzoo_env",
    "print_task_table",
    "register",
    "registered",
    "task_table",
    "unregister",
]
