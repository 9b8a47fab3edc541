"""PettingZoo's cooperative multi-particle environments (package `mpe2`), as built-in scenarios.

Each is a PettingZoo `ParallelEnv` that hapo steps as N copies (`hapo.envs.parallel`);
`env.options` are the keyword arguments of mpe2's `parallel_env` (`continuous_actions`,
`max_cycles`, and `N` for simple_spread). The team's reward is the mean of the agents'
rewards: in simple_spread each agent's reward is the shared coverage term plus its own
collisions; in the other two every agent gets the same reward.
"""

from __future__ import annotations

import importlib
from typing import Any

# hapo's scenario name -> mpe2's module.
TASKS = {
    "simple_spread": "simple_spread_v3",
    "simple_reference": "simple_reference_v3",
    "simple_speaker_listener": "simple_speaker_listener_v4",
}


def make(task: str, **options: Any) -> Any:
    """mpe2's ParallelEnv of `task` (one of TASKS) with `options`."""
    if task not in TASKS:
        raise ValueError(f"unknown MPE task {task!r}; MPE tasks: {', '.join(TASKS)}")
    try:
        module = importlib.import_module(f"mpe2.{TASKS[task]}")
    except ImportError:
        raise ImportError(f"the MPE scenario {task!r} needs the package mpe2: pip install \"hapo[mpe]\" (or pip install mpe2)") from None
    return module.parallel_env(**options)
