"""list_tasks() and `hapo-train --list-envs` against the envs and mamujoco_v1."""

import pytest
from gymnasium_robotics import mamujoco_v1
from gymnasium_robotics.envs.multiagent_mujoco.obsk import get_parts_and_edges

from hapo.cli import main
from hapo.envs import list_tasks, make
from hapo.envs.partitions import GENERATED, SCENARIOS


def test_list_tasks_covers_every_scenario_and_partition():
    listed = {(t.scenario, t.partition) for t in list_tasks()}
    for name, spec in SCENARIOS.items():
        assert {(name, p) for p in [*spec.partitions, None]} <= listed
    assert {t.scenario for t in list_tasks()} == set(SCENARIOS) | set(GENERATED)
    assert ("ManySegmentSwimmer", "10x2") in listed
    assert {("Pusher", "3p"), ("CoupledHalfCheetah", "1p1"), ("InvertedPendulum", None)} <= listed
    assert ("InvertedPendulum", "1x1") not in listed


def reference_ships(scenario, partition):
    if partition is None or scenario in GENERATED:
        return True
    try:
        get_parts_and_edges(scenario, partition)
    except Exception:  # the reference raises a bare Exception for an unknown partition
        return False
    return True


@pytest.mark.usefixtures("mamujoco_dense_ten_j")
@pytest.mark.parametrize("task", list_tasks(), ids=lambda t: f"{t.scenario}-{t.partition}")
def test_listed_sizes_are_those_of_the_env_and_the_reference(task):
    with make(task.scenario, task.partition) as env:
        assert (env.num_agents, env.obs_sizes, env.action_sizes, env.state_size, env.max_episode_steps) == (
            task.num_agents, task.obs_sizes, task.action_sizes, task.state_size, task.max_episode_steps)
    if reference_ships(task.scenario, task.partition):
        ref = mamujoco_v1.parallel_env(task.scenario, task.partition, agent_obsk=1)
        assert [ref.observation_space(a).shape[0] for a in ref.possible_agents] == list(task.obs_sizes)
        assert [ref.action_space(a).shape[0] for a in ref.possible_agents] == list(task.action_sizes)
        assert ref.state().shape[0] == task.state_size


def test_cli_lists_envs(capsys):
    assert main(["--list-envs"]) == 0
    out = capsys.readouterr().out
    for name in [*SCENARIOS, *GENERATED]:
        assert name in out
    assert "9|8" in out and "17x1" in out and "10x2" in out
