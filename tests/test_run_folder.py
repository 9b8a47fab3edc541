"""A run folder survives a kill at any moment: atomic rewrites, repair on resume, a way out.

`hapo-train` runs in a subprocess, as a user runs it; the damage a kill used to leave is
made by hand between runs.
"""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from hapo import config, files
from hapo.logger import METRICS_FILE, RunLogger, read_csv
from hapo.train import CHECKPOINT_FILE, CONFIG_FILE, Trainer

BATCH = 640  # toy_reach: 16 envs x 40 steps
TOY = ["--config", "toy_reach", "--no-progress", "--set", "run.tensorboard=false", "--set", "run.eval_interval=2",
       "--set", "run.eval_episodes=20", "--set", "run.checkpoint_interval=3"]


def hapo_train(*args: str, code: int = 0) -> str:
    """hapo-train's stderr; fails unless it exits with `code`."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, "-P", "-m", "hapo.cli", *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == code, result.stderr[-3000:]
    if code == 2:
        assert "Traceback" not in result.stderr
    return result.stderr


def toy_run(log_dir: pathlib.Path, name: str, iterations: int) -> pathlib.Path:
    hapo_train(*TOY, "--log-dir", str(log_dir), "--run-name", name, "--num-env-steps", str(iterations * BATCH))
    return log_dir / name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pathlib.Path:
    """5 iterations: checkpoints at 3 and 5, evaluations at 2, 4 and 5 (the last, off the grid)."""
    return toy_run(tmp_path_factory.mktemp("runs"), "full", 5)


@pytest.fixture
def killed_after_4(uninterrupted, tmp_path) -> pathlib.Path:
    """The uninterrupted run's folder as a kill after iteration 4 leaves it: checkpoint of 3, 4 rows."""
    cfg = config.load(str(uninterrupted / CONFIG_FILE)).with_overrides(["run.progress=false"])
    Trainer(cfg, tmp_path / "killed").train(iterations=4)
    return tmp_path / "killed"


def same_files(a: pathlib.Path, b: pathlib.Path, *names: str) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in names)


@pytest.mark.parametrize("damage", ["empty", "missing"])
@pytest.mark.parametrize("name", [CONFIG_FILE, METRICS_FILE])
def test_resume_repairs_an_empty_or_missing_config_or_metrics_from_the_checkpoint(uninterrupted, killed_after_4, name, damage):
    path = killed_after_4 / name
    path.write_bytes(b"") if damage == "empty" else path.unlink()
    err = hapo_train("--resume", str(killed_after_4), "--no-progress")
    assert same_files(killed_after_4, uninterrupted, CONFIG_FILE, METRICS_FILE)
    if name == CONFIG_FILE:
        assert f"{damage}: using the config its checkpoint holds" in " ".join(err.split())


def test_an_old_checkpoint_without_rows_refuses_a_metrics_csv_that_lost_rows(killed_after_4):
    checkpoint = torch.load(killed_after_4 / CHECKPOINT_FILE, weights_only=True)
    del checkpoint["metrics"]  # as written before checkpoints kept the rows
    torch.save(checkpoint, killed_after_4 / CHECKPOINT_FILE)
    rows = (killed_after_4 / METRICS_FILE).read_text().splitlines()
    (killed_after_4 / METRICS_FILE).write_text("\n".join(rows[:2] + ["3,19"]) + "\n")  # row 2 lost, row 3 cut by a kill
    err = hapo_train("--resume", str(killed_after_4), "--no-progress", code=2)
    assert err.splitlines()[-1] == (
        f"hapo-train: error: cannot resume: {killed_after_4 / METRICS_FILE} holds the rows of iterations 1 but the checkpoint "
        "is at iteration 3, and this checkpoint (written before checkpoints kept the rows) cannot restore them"
    )


def test_an_old_checkpoint_without_rows_resumes_a_whole_metrics_csv(uninterrupted, killed_after_4):
    checkpoint = torch.load(killed_after_4 / CHECKPOINT_FILE, weights_only=True)
    del checkpoint["metrics"]
    torch.save(checkpoint, killed_after_4 / CHECKPOINT_FILE)
    with (killed_after_4 / METRICS_FILE).open("a") as handle:
        handle.write("5,32")  # a row cut short by the kill
    hapo_train("--resume", str(killed_after_4), "--no-progress")
    assert same_files(killed_after_4, uninterrupted, METRICS_FILE)


@pytest.mark.parametrize("write", ["config", "metrics"])
def test_config_and_metrics_are_rewritten_atomically(tmp_path, monkeypatch, write):
    cfg = config.load("toy_reach")
    (tmp_path / METRICS_FILE).write_text("iteration,x\n1,0.5\n2,0.25\n")
    config.save(cfg, tmp_path / CONFIG_FILE)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        if write == "config":
            config.save(cfg.with_overrides(["run.seed=5"]), tmp_path / CONFIG_FILE)
        else:
            RunLogger(tmp_path, tensorboard=False, resume_at=(1, 640), rows=[{"iteration": 1, "x": 0.5}])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # and no partial file left


def test_extending_a_finished_run_evaluates_as_a_run_never_stopped(uninterrupted, tmp_path):
    short = toy_run(tmp_path, "short", 3)  # ends off the evaluation grid: a final evaluation at 3
    hapo_train("--resume", str(short), "--num-env-steps", str(5 * BATCH), "--no-progress")
    extended, full = read_csv(short / METRICS_FILE), read_csv(uninterrupted / METRICS_FILE)
    assert extended[2]["eval_return"] != "" and full[2]["eval_return"] == ""  # the finished run's own final evaluation
    extended[2]["eval_return"] = ""
    assert extended == full


def test_resume_to_fewer_steps_than_done_is_an_error(killed_after_4):
    metrics = (killed_after_4 / METRICS_FILE).read_bytes()
    err = hapo_train("--resume", str(killed_after_4), "--num-env-steps", "1000", code=2)
    assert err.splitlines()[-1] == (
        f"hapo-train: error: run {killed_after_4} has done 1920 env steps (3 iterations of 640): "
        "num_env_steps 1000 is below that; give more to extend the run"
    )
    assert (killed_after_4 / METRICS_FILE).read_bytes() == metrics


def test_a_run_killed_before_its_first_checkpoint_can_be_started_over(uninterrupted, tmp_path):
    cfg = config.load(str(uninterrupted / CONFIG_FILE)).with_overrides(["run.progress=false"])
    Trainer(cfg, tmp_path / "r").train(iterations=2)  # killed before the checkpoint of iteration 3

    again = [*TOY, "--log-dir", str(tmp_path), "--run-name", "r", "--num-env-steps", str(5 * BATCH)]
    err = hapo_train(*again, code=2)
    assert "already holds a run: continue it with --resume" in err and "start it over with --overwrite" in err
    err = hapo_train("--resume", str(tmp_path / "r"), code=2)
    start_over = f"hapo-train --config {tmp_path / 'r' / CONFIG_FILE} --log-dir {tmp_path} --run-name r --overwrite"
    assert err.splitlines()[-1] == (
        f"hapo-train: error: cannot resume {tmp_path / 'r'}: it stopped before its first checkpoint (no {CHECKPOINT_FILE}); "
        f"start it over with {start_over}"
    )
    hapo_train(*start_over.split()[1:], "--no-progress")
    assert same_files(tmp_path / "r", uninterrupted, METRICS_FILE)
