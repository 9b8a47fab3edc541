"""hapo-train's errors: one line `hapo-train: error: ...` and exit code 2, a traceback only with --debug."""

import re

import pytest
import yaml

from hapo import config
from hapo.cli import main
from hapo.logger import METRICS_FILE, read_csv
from hapo.train import Trainer

TOY = ["--config", "toy_reach", "--num-env-steps", "1280", "--no-progress", "--set", "run.tensorboard=false", "--set", "run.eval_interval=0"]


def fails_with(capsys, argv, message):
    """Run hapo-train with `argv`; check it exits with 2 after one error line matching `message`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == err.splitlines()[-1:], err
    assert re.match(r"hapo-train: error: " + message, errors[0]), errors[0]


@pytest.fixture
def no_iterations(monkeypatch):
    """Errors must come before the first iteration: make iterating itself a failure."""

    def iterate(self):
        raise AssertionError("an iteration ran before the error")

    monkeypatch.setattr(Trainer, "iterate", iterate)


def test_unknown_scenario(capsys, tmp_path, no_iterations):
    fails_with(capsys, TOY + ["--log-dir", str(tmp_path), "--scenario", "Nope"], r"unknown scenario 'Nope', expected one of: Ant, CoupledHalfCheetah, HalfCheetah")
    assert list(tmp_path.iterdir()) == []  # no run folder left behind


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario 'Nope'"):
        main(TOY + ["--log-dir", str(tmp_path), "--scenario", "Nope", "--debug"])


@pytest.mark.parametrize("below", ["", "deeper/still"])
def test_log_dir_on_a_file_fails_before_the_first_iteration(capsys, tmp_path, no_iterations, below):
    file = tmp_path / "file"
    file.write_text("mine")
    log_dir = file / below if below else file
    fails_with(capsys, TOY + ["--log-dir", str(log_dir), "--run-name", "r"], rf"run folder {re.escape(str(log_dir / 'r'))} cannot be made: {re.escape(str(file))} is a file")
    assert file.read_text() == "mine"


def test_a_folder_holding_a_run_is_not_reused(capsys, tmp_path, no_iterations):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / METRICS_FILE).write_text("iteration\n1\n")
    fails_with(capsys, TOY + ["--log-dir", str(tmp_path), "--run-name", "r"], r"run folder .*r already holds a run: continue it with --resume")


def test_config_file_that_is_not_utf8(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"env:\n  scenario: \xff\xfe\n")
    fails_with(capsys, ["--config", str(bad)], rf"config file {re.escape(str(bad))} is not UTF-8 text")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "18446744073709551616"], r"run.seed must be in \[0, 2\*\*32\), got 18446744073709551616"),
        (["--seed", "-1"], r"run.seed must be in \[0, 2\*\*32\), got -1"),
        (["--set", "env.num_envs=10000000000"], r"env.num_envs must be in \[1, 2\*\*31\), got 10000000000"),
        (["--set", "algo.ppo_epochs=2147483648"], r"algo.ppo_epochs must be in \[1, 2\*\*31\)"),
        (["--set", "run.eval_interval=1e12"], r"run.eval_interval must be in \[0, 2\*\*31\)"),
        (["--num-env-steps", "1e30"], r"run.num_env_steps must be in \[1, 2\*\*63\)"),
        (["--set", "model.hidden_sizes=[64, 4294967296]"], r"model.hidden_sizes must be a non-empty list of positive ints below 2\*\*31"),
    ],
)
def test_integers_out_of_range_name_the_key_and_the_range(capsys, argv, message):
    fails_with(capsys, ["--config", "toy_reach", "--print-config", *argv], message)


def test_largest_integers_in_range_are_accepted(capsys):
    assert main(["--config", "toy_reach", "--print-config", "--seed", str(2**32 - 1), "--set", "env.num_threads=2147483647"]) == 0
    printed = config.Config.from_dict(yaml.safe_load(capsys.readouterr().out))
    assert (printed.run.seed, printed.env.num_threads) == (2**32 - 1, 2**31 - 1)


def test_resume_errors(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    fails_with(capsys, ["--resume", str(tmp_path / "file")], r"cannot resume .*file: it is not a folder")
    fails_with(capsys, ["--resume", str(tmp_path / "missing")], r"cannot resume .*missing: no such folder")
    fails_with(capsys, ["--resume", str(tmp_path)], rf"run folder {re.escape(str(tmp_path))} holds no run: no checkpoint.pt")
    fails_with(capsys, ["--resume", str(tmp_path), "--num-env-steps", "-5"], r"run.num_env_steps must be in \[1, 2\*\*63\), got -5")


def test_resume_of_a_run_whose_config_was_edited(capsys, tmp_path):
    assert main(TOY + ["--log-dir", str(tmp_path), "--run-name", "r"]) == 0
    run = tmp_path / "r"
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("clip: 0.2", "clip: 0.3"))
    checkpoint = (run / "checkpoint.pt").read_bytes()
    fails_with(capsys, ["--resume", str(run)], r"checkpoint .*checkpoint.pt was written with another config: algo.clip differ")
    assert (run / "checkpoint.pt").read_bytes() == checkpoint


def test_interrupt_says_how_to_continue(capsys, tmp_path, monkeypatch):
    iterate = Trainer.iterate

    def interrupted_after_two(self):
        if self.iteration == 2:
            raise KeyboardInterrupt
        return iterate(self)

    monkeypatch.setattr(Trainer, "iterate", interrupted_after_two)
    run = tmp_path / "r"
    with pytest.raises(SystemExit) as exit_info:
        main(TOY + ["--log-dir", str(tmp_path), "--run-name", "r", "--set", "run.checkpoint_interval=1", "--num-env-steps", "3200"])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.splitlines()[-1] == f"hapo-train: error: interrupted at iteration 2; continue from its last checkpoint with hapo-train --resume {run}"
    assert len(read_csv(run / METRICS_FILE)) == 2


def test_overwrite_and_resume_exclude_each_other(capsys, tmp_path):
    fails_with(capsys, ["--resume", str(tmp_path), "--overwrite"], r"--overwrite starts a run over and --resume continues one: give one of them")
