"""hapo-sweep: spec checks, trial expansion, trial states, and real local-Ray sweeps that resume."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from hapo import config as config_lib
from hapo.config import ConfigError
from hapo.experiments import plot, sweep
from hapo.train import Trainer

# 2 algorithms x 2 toy tasks x 2 seeds, 6 iterations each, one CPU per trial.
TOY_SPEC = {
    "base": "toy_reach",
    "set": {
        "run.num_env_steps": 6 * 16 * 40,
        "run.checkpoint_interval": 2,
        "run.eval_interval": 3,
        "run.eval_episodes": 20,
        "run.tensorboard": False,
        "run.update_torch_threads": 1,
        "env.num_threads": 1,
    },
    "grid": {
        "algo.name": ["happo", "hatrpo"],
        "env": [{"scenario": "ToyReach", "agent_conf": "2+1"}, {"scenario": "ToySplit", "agent_conf": "2"}],
        "run.seed": [1, 2],
    },
}


def toy_spec(directory: pathlib.Path, **changes) -> sweep.Spec:
    return sweep.parse_spec({**TOY_SPEC, "dir": str(directory), **changes})


def test_expand_names_orders_and_resolves_every_trial(tmp_path):
    trials = sweep.expand(toy_spec(tmp_path))
    assert [t.name for t in trials[:3]] == [
        "algo.name=happo_env=ToyReach-2+1_run.seed=1",
        "algo.name=happo_env=ToyReach-2+1_run.seed=2",
        "algo.name=happo_env=ToySplit-2_run.seed=1",
    ]
    assert len(trials) == 8 and len({t.name for t in trials}) == 8
    last = trials[-1].config
    assert (last.algo.name, last.env.scenario, last.env.agent_conf, last.run.seed) == ("hatrpo", "ToySplit", "2", 2)
    assert last.run.num_env_steps == 3840 and last.model.hidden_sizes == [64, 64]  # set, and the base's value
    assert trials[0].run_dir == tmp_path / trials[0].name
    assert trials[0].cpus == 1 and trials[0].total_iterations == 6


def test_tuned_base_takes_each_task_and_algorithms_builtin_config(tmp_path):
    spec = sweep.parse_spec({
        "dir": str(tmp_path),
        "grid": {"env": [{"scenario": "HalfCheetah", "agent_conf": "2x3"}, {"scenario": "Ant", "agent_conf": "4x2"}],
                 "algo.name": ["happo", "hatrpo"]},
    })
    configs = {t.name: t.config for t in sweep.expand(spec)}
    for name, config in configs.items():
        tuned = config_lib.tuned_name(config.env.scenario, config.env.agent_conf, config.algo.name)
        expected = config_lib.load(tuned).to_dict()
        for section, values in config.to_dict().items():
            for key, value in values.items():
                if f"{section}.{key}" not in config_lib.PRESENTATION_KEYS:
                    assert value == expected[section][key], (name, section, key)
    assert configs["env=HalfCheetah-2x3_algo.name=happo"].algo.clip == 0.05
    assert configs["env=Ant-4x2_algo.name=hatrpo"].algo.kl_threshold == 0.005


def test_grid_lists_are_a_union(tmp_path):
    spec = sweep.parse_spec({
        "dir": str(tmp_path), "base": "toy_reach",
        "grid": [{"run.seed": [1, 2]}, {"run.seed": [2, 3], "algo.clip": [0.1]}],
    })
    assert [t.name for t in sweep.expand(spec)] == ["run.seed=1", "run.seed=2", "run.seed=2_algo.clip=0.1", "run.seed=3_algo.clip=0.1"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grids": {}}, "unknown key 'grids'"),
        ({"grid": {"run.seed": []}}, "grid key 'run.seed'"),
        ({"grid": {}}, "must be a non-empty mapping"),
        ({"grid": None}, "needs grid"),
        ({"grid": {"algo.clipp": [0.1]}}, "unknown key algo.clipp"),
        ({"grid": {"algo.clip": ["wide"]}}, "algo.clip must be a number"),
        ({"grid": {"algo.name": ["nope"]}}, "algo.name must be one of"),
        ({"grid": {"optim.lr": [1]}}, "unknown section 'optim'"),
        ({"grid": {"env": ["HalfCheetah"]}}, "its values must be mappings"),
        ({"set": {"algo.clip": -1}}, "algo.clip must be > 0"),
        ({"dir": ""}, "needs dir"),
        ({"base": "no_such_config"}, "unknown config 'no_such_config'"),
    ],
)
def test_bad_specs_fail_before_anything_runs_naming_the_key(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        sweep.expand(toy_spec(tmp_path / "sweep", **changes))
    assert not (tmp_path / "sweep").exists()


def test_load_spec_names_the_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(ConfigError, match=f"sweep spec {path} is not UTF-8"):
        sweep.load_spec(path)
    path.write_text("dir: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        sweep.load_spec(path)
    with pytest.raises(ConfigError, match="does not exist"):
        sweep.load_spec(tmp_path / "missing.yaml")


def test_trial_states_and_a_folder_of_another_config(tmp_path):
    trial, other = sweep.expand(toy_spec(tmp_path))[:2]
    assert sweep.trial_state(trial) == "new"
    Trainer(trial.config, trial.run_dir).train(iterations=3)  # checkpoint at 2, metrics up to 3
    assert sweep.trial_state(trial) == "resume"
    (trial.run_dir / "checkpoint.pt").unlink()
    assert sweep.trial_state(trial) == "restart"
    other.run_dir.mkdir()
    config_lib.save(trial.config.with_overrides(["algo.clip=0.3"]), other.run_dir / "config.yaml")
    with pytest.raises(ConfigError, match="holds a run of another config \\(algo.clip, run.seed differ\\)"):
        sweep.trial_state(other)


def _metrics(directory: pathlib.Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(directory.glob("*/metrics.csv"))}


def test_interrupted_sweep_finishes_only_what_is_left_with_identical_metrics(tmp_path):
    whole = sweep.expand(toy_spec(tmp_path / "whole"))
    result = sweep.run_sweep(whole, num_cpus=2, progress=False)
    assert not result.failed and not result.skipped and len(result.finished) == 8
    reference = _metrics(tmp_path / "whole")
    assert len(reference) == 8
    # hapo-plot on the sweep: one group per task and algorithm, two seeds each.
    report = plot.report([tmp_path / "whole"], tmp_path / "plots", reps=200)
    assert sorted((row.group, row.seeds) for row in report.rows) == [
        ("ToyReach 2+1 happo", 2), ("ToyReach 2+1 hatrpo", 2), ("ToySplit 2 happo", 2), ("ToySplit 2 hatrpo", 2),
    ]
    written = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"final.md", "final.csv"} <= written and len([n for n in written if n.startswith("curve_")]) == 2

    # The state a sweep killed mid-way leaves: one trial done, one with a checkpoint and a
    # metrics row written after it, one with outputs but no checkpoint, five not started.
    trials = sweep.expand(toy_spec(tmp_path / "cut"))
    done, cut, lost = trials[0], trials[1], trials[2]
    sweep.run_trial(done.config.to_dict(), "new")
    Trainer(cut.config, cut.run_dir).train(iterations=3)
    Trainer(lost.config, lost.run_dir).train(iterations=1)  # before the first checkpoint
    assert sweep.trial_state(lost) == "restart" and sweep.trial_state(cut) == "resume"
    done_stamp = (done.run_dir / "metrics.csv").stat().st_mtime_ns

    result = sweep.run_sweep(trials, num_cpus=2, progress=False)
    assert result.skipped == [done.name]
    assert set(result.finished) == {t.name for t in trials[1:]} and not result.failed
    assert (done.run_dir / "metrics.csv").stat().st_mtime_ns == done_stamp
    assert _metrics(tmp_path / "cut") == reference

    again = sweep.run_sweep(trials, num_cpus=2, progress=False)
    assert len(again.skipped) == 8 and not again.finished


def test_a_failing_trial_is_reported_and_the_others_finish(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    # ToySplit has no partition "7": the config is valid, the trial fails when it makes its env.
    spec = {**TOY_SPEC, "dir": str(tmp_path / "sweep"),
            "grid": {"env": [{"scenario": "ToySplit", "agent_conf": "2"}, {"scenario": "ToySplit", "agent_conf": "7"}]}}
    spec_path.write_text(yaml.safe_dump(spec))
    code = sweep.main([str(spec_path), "--num-cpus", "2", "--no-progress"])
    assert code == 1
    assert (tmp_path / "sweep" / "env=ToySplit-2" / "metrics.csv").is_file()
    assert not (tmp_path / "sweep" / "env=ToySplit-7" / "metrics.csv").exists()


def test_cli_rejects_bad_specs_with_exit_code_2(tmp_path, capsys):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"dir": str(tmp_path / "s"), "grid": {"algo.clip": []}}))
    with pytest.raises(SystemExit) as exit_info:
        sweep.main([str(spec_path)])
    assert exit_info.value.code == 2
    assert "hapo-sweep: error: grid key 'algo.clip'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        sweep.main([str(spec_path), "--max-concurrent", "0"])
    assert exit_info.value.code == 2


def test_a_sweep_interrupted_with_ctrl_c_ends_like_an_uninterrupted_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    def spec_file(directory: pathlib.Path) -> pathlib.Path:
        path = directory.with_suffix(".yaml")
        spec = {**TOY_SPEC, "dir": str(directory), "grid": {"run.seed": [1, 2]}}
        spec["set"] = {**TOY_SPEC["set"], "run.num_env_steps": 30 * 16 * 40, "run.checkpoint_interval": 3}
        path.write_text(yaml.safe_dump(spec))
        return path

    assert sweep.main([str(spec_file(tmp_path / "whole")), "--num-cpus", "1", "--no-progress"]) == 0
    cut = spec_file(tmp_path / "cut")
    command = [sys.executable, "-P", "-m", "hapo.experiments.sweep", str(cut), "--num-cpus", "1", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 120
    # Interrupt once the second trial has a checkpoint: one trial done, the other part-way.
    while time.monotonic() < deadline and not (tmp_path / "cut" / "run.seed=2" / "checkpoint.pt").exists():
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0
    left = [t for t in sweep.expand(sweep.load_spec(cut)) if sweep.trial_state(t) != "done"]
    assert [t.name for t in left] == ["run.seed=2"]
    assert sweep.main([str(cut), "--num-cpus", "1", "--no-progress"]) == 0
    assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "whole")


def test_tuned_base_falls_back_to_the_named_config_where_nothing_is_tuned(tmp_path):
    grid = {"env": [{"scenario": "HalfCheetah", "agent_conf": "6x1"}], "algo.name": ["happo", "hatrpo"]}
    happo, hatrpo = sweep.expand(sweep.parse_spec({"dir": str(tmp_path), "fallback": "paper_mamujoco", "grid": grid}))
    assert config_lib.tuned_name("HalfCheetah", "6x1", "hatrpo") is None
    assert (hatrpo.config.env.obs_mode, hatrpo.config.model.std, hatrpo.config.algo.name) == ("global", "sigmoid", "hatrpo")
    assert happo.config.to_dict()["algo"] == config_lib.load("halfcheetah_6x1").to_dict()["algo"]
    plain = sweep.expand(sweep.parse_spec({"dir": str(tmp_path), "grid": grid}))[1]
    assert plain.config.env.obs_mode == "local"  # no fallback: the schema defaults
    with pytest.raises(ConfigError, match="fallback .* with base: tuned"):
        sweep.parse_spec({"dir": str(tmp_path), "base": "toy_reach", "fallback": "paper_mamujoco", "grid": grid})
