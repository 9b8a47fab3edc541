import dataclasses

import pytest

from hapo import config
from hapo.cli import DEFAULT_CONFIG, main
from hapo.config import Config, ConfigError


def test_defaults_are_the_harl_tuned_mamujoco_settings():
    c = Config()
    assert (c.env.num_envs, c.algo.rollout_length) == (20, 200)
    assert (c.algo.actor_lr, c.algo.critic_lr, c.algo.ppo_epochs, c.algo.num_minibatches) == (5e-4, 5e-4, 5, 1)
    assert (c.algo.clip, c.algo.gamma, c.algo.gae_lambda, c.algo.max_grad_norm) == (0.2, 0.99, 0.95, 10.0)
    assert c.model.hidden_sizes == [128, 128, 128] and c.model.activation == "relu"
    assert c.run.num_env_steps == 10_000_000


def test_halfcheetah_2x3_uses_its_tuned_clip_and_epochs():
    c = config.load("halfcheetah_2x3")
    assert (c.env.scenario, c.env.agent_conf, c.algo.clip, c.algo.ppo_epochs) == ("HalfCheetah", "2x3", 0.05, 15)
    assert config.load("halfcheetah_6x1").algo.clip == 0.2


@pytest.mark.parametrize("name", config.builtin_names())
def test_every_builtin_config_loads_and_round_trips(name, tmp_path):
    c = config.load(name)
    config.save(c, tmp_path / "c.yaml")
    assert config.load(str(tmp_path / "c.yaml")) == c


def test_every_field_has_help():
    for section in config.SECTIONS.values():
        for f in dataclasses.fields(section):
            assert len(f.metadata["help"]) > 10, f.name


def test_overrides_parse_types():
    c = Config().with_overrides(["run.num_env_steps=1e6", "algo.clip=0.1", "algo.fixed_order=true", "model.hidden_sizes=[8, 4]", "env.agent_conf=4"])
    assert c.run.num_env_steps == 1_000_000 and isinstance(c.run.num_env_steps, int)
    assert (c.algo.clip, c.algo.fixed_order, c.model.hidden_sizes, c.env.agent_conf) == (0.1, True, [8, 4], "4")


@pytest.mark.parametrize(
    "override,match",
    [
        ("algo.clipp=0.1", r"unknown key algo.clipp .*valid keys of algo: name, rollout_length, ppo_epochs"),
        ("optim.lr=0.1", r"unknown section 'optim'.*valid sections: env, algo, model, run"),
        ("algo.clip=-0.1", r"algo.clip must be > 0, got -0.1"),
        ("algo.gamma=1.5", r"algo.gamma must be in \[0, 1\], got 1.5"),
        ("algo.ppo_epochs=2.5", r"algo.ppo_epochs must be an int, got 2.5"),
        ("algo.ppo_epochs=many", r"algo.ppo_epochs must be an int, got 'many'"),
        ("algo.fixed_order=yes please", r"algo.fixed_order must be a bool \(true or false\)"),
        ("algo.clip=.nan", r"algo.clip must be a finite number"),
        ("model.activation=gelu", r"model.activation must be one of relu, tanh, got 'gelu'"),
        ("model.hidden_sizes=[64, 0]", r"model.hidden_sizes must be a non-empty list of positive ints"),
        ("model.hidden_sizes=64", r"model.hidden_sizes must be a list"),
        ("algo.name=sac", r"algo.name must be one of happo, hatrpo, .*, got 'sac'"),
        ("clip=0.1", r"must look like section.key=value"),
    ],
)
def test_bad_overrides_name_the_key_and_what_is_valid(override, match):
    with pytest.raises(ConfigError, match=match):
        Config().with_overrides([override])


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo:\n  ppo_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key algo.ppo_epoch in .*bad.yaml; valid keys of algo: .*ppo_epochs"):
        config.load(str(bad))
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        config.load(str(bad))
    with pytest.raises(ConfigError, match=r"unknown config 'nope': .*halfcheetah_2x3"):
        config.load("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(str(tmp_path / "missing.yaml"))


def test_cli_reports_config_errors_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--set", "algo.clip=abc", "--no-progress"])
    assert exit_info.value.code == 2
    assert "algo.clip must be a number, got 'abc'" in capsys.readouterr().err


def test_cli_print_config_applies_file_flags_and_set_in_order(capsys):
    assert main(["--config", "halfcheetah_2x3", "--seed", "7", "--set", "algo.ppo_epochs=3", "--print-config"]) == 0
    printed = capsys.readouterr().out
    c = Config.from_dict(__import__("yaml").safe_load(printed))
    assert (c.env.scenario, c.algo.clip, c.algo.ppo_epochs, c.run.seed) == ("HalfCheetah", 0.05, 3, 7)


def test_cli_scenario_flags_pick_the_tuned_config(capsys):
    main(["--scenario", "HalfCheetah", "--agent-conf", "2x3", "--print-config"])
    assert "clip: 0.05" in capsys.readouterr().out


def test_default_job_is_a_builtin_config():
    assert DEFAULT_CONFIG in config.builtin_names()
    config.load("quickstart_halfcheetah_6x1")


def test_integers_too_large_for_a_float_get_the_range_error():
    with pytest.raises(ConfigError, match=r"env.num_envs must be in \[1, 2\*\*31\)"):
        Config().with_overrides(["env.num_envs=1" + "0" * 400])
