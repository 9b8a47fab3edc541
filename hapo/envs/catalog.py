"""Every scenario and partition with its agents' sizes (`hapo-train --list-envs`)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from hapo.envs.env import load_model
from hapo.envs.layouts import build_layout
from hapo.envs.partitions import GENERATED, LISTED_PARTITIONS, SCENARIOS, get_scenario


@dataclass(frozen=True)
class TaskInfo:
    """One scenario and partition as make(scenario, partition, agent_obsk=...) builds it."""

    scenario: str
    partition: str | None
    num_agents: int
    obs_sizes: tuple[int, ...]
    action_sizes: tuple[int, ...]
    state_size: int
    max_episode_steps: int


def list_tasks(agent_obsk: int | None = 1) -> list[TaskInfo]:
    """Every scenario with each of its partitions (None: one agent acting on everything;
    for the many-segment scenarios, which take any "AxS", the listed examples)."""
    pairs = [(name, p) for name, spec in sorted(SCENARIOS.items()) for p in [*sorted(spec.partitions), None]]
    pairs += [(name, p) for name in sorted(GENERATED) for p in LISTED_PARTITIONS[name]]
    tasks = []
    for scenario, partition in pairs:
        spec = get_scenario(scenario, partition)
        layout = build_layout(load_model(scenario, spec)[2], spec, partition, agent_obsk)
        tasks.append(
            TaskInfo(
                scenario,
                partition,
                len(layout.agent_actuators),
                tuple(len(ints) for ints, _ in layout.agent_obs),
                tuple(len(a) for a in layout.agent_actuators),
                len(layout.state[0]),
                spec.max_episode_steps,
            )
        )
    return tasks


def task_table(agent_obsk: int | None = 1) -> Table:
    """list_tasks() as a rich Table."""
    table = Table(title=f"Multi-agent MuJoCo tasks (per-agent sizes with agent_obsk={agent_obsk})")
    for column in ("scenario", "partition"):
        table.add_column(column, no_wrap=True)
    for column in ("agents", "obs sizes", "action sizes", "state", "time limit"):
        table.add_column(column, justify="right")
    for task in list_tasks(agent_obsk):
        table.add_row(
            task.scenario,
            "None" if task.partition is None else task.partition,
            str(task.num_agents),
            ", ".join(map(str, task.obs_sizes)),
            ", ".join(map(str, task.action_sizes)),
            str(task.state_size),
            str(task.max_episode_steps),
        )
    return table


def print_task_table(console: Console | None = None) -> None:
    """Print task_table() to the console (stdout by default)."""
    (console or Console()).print(task_table())
