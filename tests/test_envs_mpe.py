"""PettingZoo's MPE (mpe2) as built-in scenarios: built-in configs, both action kinds, learning."""

import importlib

import numpy as np
import pytest
import yaml
from mpe2 import simple_reference_v3, simple_speaker_listener_v4, simple_spread_v3

from hapo import config
from hapo.cli import main
from hapo.envs import mpe
from hapo.train import Trainer, make_env, run_name

REFERENCES = {"simple_spread": simple_spread_v3, "simple_reference": simple_reference_v3, "simple_speaker_listener": simple_speaker_listener_v4}


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("task", list(mpe.TASKS))
def test_built_in_config_trains_one_iteration_with_mpe2s_spaces(task, continuous):
    cfg = config.load(task).with_overrides([
        f"env.options={{continuous_actions: {str(continuous).lower()}, max_cycles: 25}}", "env.num_envs=4",
        "algo.rollout_length=25", "run.num_env_steps=100", "run.eval_interval=1", "run.eval_episodes=4",
        "run.eval_num_envs=4", "run.progress=false", "run.tensorboard=false",
    ])
    assert run_name(cfg) == f"{task}-happo-seed1"
    trainer = Trainer(cfg)
    (row,) = trainer.train()
    assert np.isfinite(row["train_return"]) and np.isfinite(row["eval_return"])
    reference = REFERENCES[task].parallel_env(continuous_actions=continuous)
    env = trainer.env
    assert env.agents == reference.possible_agents
    assert env.obs_sizes == tuple(reference.observation_space(a).shape[0] for a in reference.possible_agents)
    assert env.action_kind == ("continuous" if continuous else "discrete")
    sizes = [reference.action_space(a).shape[0] if continuous else reference.action_space(a).n for a in reference.possible_agents]
    assert list(env.action_sizes) == sizes


def test_happo_learns_simple_spread():
    """64,000 steps (at a learning rate raised for the test) lift the deterministic team far
    above the untrained one and above a random team, and the training returns with it."""
    cfg = config.load("simple_spread").with_overrides([
        "run.num_env_steps=64000", "run.eval_interval=10", "algo.actor_lr=0.002", "algo.critic_lr=0.002",
        "run.progress=false", "run.tensorboard=false",
    ])
    trainer = Trainer(cfg)
    untrained = trainer.evaluate()
    rows = trainer.train()
    train_returns = [r["train_return"] for r in rows]
    random_team = train_returns[0]  # the first iteration's stochastic, nearly uniform team
    final = rows[-1]["eval_return"]
    assert final > untrained + 15, (untrained, final)
    assert final > random_team + 2, (random_team, final)
    assert np.mean(train_returns[-5:]) > random_team + 2, train_returns


def test_cli_picks_the_mpe_config(capsys):
    assert main(["--scenario", "simple_spread", "--algo", "mappo", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["env"]["options"] == {"max_cycles": 25} and printed["algo"]["share_param"] is True
    assert printed["model"]["hidden_sizes"] == [64, 64]


def test_without_mpe2_the_error_names_the_extra(monkeypatch):
    real = importlib.import_module

    def no_mpe2(name, *args):
        if name.startswith("mpe2"):
            raise ImportError("No module named 'mpe2'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_mpe2)
    with pytest.raises(ImportError, match=r'needs the package mpe2: pip install "hapo\[mpe\]"'):
        make_env(config.load("simple_reference").env, 2, 0)


def test_unknown_option_is_mpe2s_own_error():
    cfg = config.load("simple_spread").with_overrides(["env.options={colour: red}"])
    with pytest.raises(TypeError, match="colour"):
        make_env(cfg.env, 2, 0)
