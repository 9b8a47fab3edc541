"""Checkpoints: plain data loaded with weights_only=True, exact round trips, atomic saves, clear errors."""

import io
import random
import re
import shutil

import numpy as np
import pytest
import torch

from hapo import checkpoint as checkpoint_lib
from hapo import config
from hapo import train as train_module
from hapo.checkpoint import FORMAT, CheckpointError
from hapo.cli import main
from hapo.logger import METRICS_FILE, read_csv
from hapo.train import CHECKPOINT_FILE, Trainer, load_policy

QUIET = ["run.progress=false", "run.tensorboard=false"]
TOY = config.load("toy_split").with_overrides(QUIET + ["run.num_env_steps=1024", "run.eval_interval=1", "run.checkpoint_interval=2"])
# HalfCheetah 2x3 through the C++ env, whose snapshot holds float64 physics and uint64 RNG words.
MUJOCO = config.load("halfcheetah_2x3").with_overrides(QUIET + [
    "env.num_envs=2", "env.num_threads=1", "algo.rollout_length=10", "run.num_env_steps=100",
    "run.eval_interval=0", "run.checkpoint_interval=2", "model.hidden_sizes=[16]", "algo.ppo_epochs=1", "algo.critic_epochs=1",
])


def through_weights_only_load(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_same(a, b, where="state"):
    """Equal, bit for bit, through nested dicts, lists and tuples of arrays, tensors and numbers."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


def state_of(trainer):
    """Everything a checkpoint should carry, in the trainer's own (not the file's) types."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
        "sample": trainer.sample_generator.get_state(),
        "minibatch": trainer.minibatch_generator.get_state(),
        "permutation": trainer.permutation_rng.bit_generator.state,
        "env": trainer.env.snapshot(),
        "eval_env": None if trainer.eval_env is None else trainer.eval_env.snapshot(),
        "actors": [a.state_dict() for a in trainer.distinct_actors],
        "updaters": [u.state_dict() for u in trainer.updaters],
        "critic": trainer.critic.state_dict(),
        "critic_update": trainer.critic_update.state_dict(),
        "current": trainer.storage.current(),
        "episodes": (trainer.episode_return, trainer.episode_length, list(trainer.recent_returns), list(trainer.recent_lengths)),
        "counters": (trainer.iteration, trainer.env_steps),
    }


# -- plain data ------------------------------------------------------------------------------
def test_rng_states_round_trip_through_plain_data_exactly():
    random.seed(3)
    random.gauss(0, 1)  # leaves gauss_next set
    saved = through_weights_only_load(checkpoint_lib.python_rng_state())
    expected = [random.random() for _ in range(3)] + [random.gauss(0, 1)]
    random.seed(4)
    checkpoint_lib.set_python_rng_state(saved)
    assert [random.random() for _ in range(3)] + [random.gauss(0, 1)] == expected

    np.random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian
    saved = through_weights_only_load(checkpoint_lib.numpy_rng_state())
    expected = np.random.standard_normal(5)
    np.random.seed(4)
    checkpoint_lib.set_numpy_rng_state(saved)
    assert np.array_equal(np.random.standard_normal(5), expected)

    for generator in (np.random.default_rng(2**100 + 7), np.random.Generator(np.random.MT19937(5)), np.random.Generator(np.random.Philox(5))):
        generator.random(3)
        state = generator.bit_generator.state
        assert_same(checkpoint_lib.from_plain(through_weights_only_load(checkpoint_lib.to_plain(state))), state)
    assert max(np.random.default_rng(2**100 + 7).bit_generator.state["state"].values()) >= 2**64  # the big ints were tested


def test_plain_data_refuses_what_does_not_round_trip():
    with pytest.raises(TypeError, match=r"snapshot.pair is tuple"):
        checkpoint_lib.to_plain({"pair": (1, 2)}, "snapshot")
    with pytest.raises(TypeError, match=r"snapshot.big is int"):
        checkpoint_lib.to_plain({"big": 2**64}, "snapshot")
    with pytest.raises(TypeError, match=r"checkpoint.env\[0\] is ndarray"):
        checkpoint_lib.check_plain({"env": [np.zeros(2)]})


@pytest.mark.parametrize("cfg", [TOY, MUJOCO], ids=["toy", "mujoco"])
def test_a_checkpoint_is_plain_data_and_restores_every_state_exactly(tmp_path, cfg):
    trainer = Trainer(cfg, tmp_path)
    trainer.train(iterations=2)  # saves at iteration 2
    saved = state_of(trainer)

    data = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    checkpoint_lib.check_plain(data)
    assert data["format"] == FORMAT and data["config"] == cfg.to_dict()
    random.seed(99)  # the new trainer and the draws below must not leak into the restored state
    np.random.seed(99)
    restored = Trainer(cfg)
    restored.load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert_same(state_of(restored), saved)


def test_resumed_mujoco_run_writes_the_rows_of_an_uninterrupted_run(tmp_path):
    Trainer(MUJOCO, tmp_path / "full").train()
    Trainer(MUJOCO, tmp_path / "part").train(iterations=3)  # checkpoint at 2; row 3 is lost with the "crash"
    Trainer.resume(tmp_path / "part").train()
    assert read_csv(tmp_path / "part" / METRICS_FILE) == read_csv(tmp_path / "full" / METRICS_FILE)


# -- writing -----------------------------------------------------------------------------------
def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_FILE
    checkpoint_lib.write(path, {"format": FORMAT, "weights": torch.ones(3)})
    before = path.read_bytes()

    def interrupted(value, handle):
        handle.write(before[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_lib.write(path, {"format": FORMAT, "weights": torch.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]

    monkeypatch.undo()
    with pytest.raises(TypeError, match="ndarray"):
        checkpoint_lib.write(path, {"weights": np.zeros(3)})
    assert path.read_bytes() == before
    (tmp_path / f".{CHECKPOINT_FILE}.0123.partial").write_bytes(before[:100])  # left by a killed save
    checkpoint_lib.write(path, {"format": FORMAT, "weights": torch.zeros(3)})
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.zeros(3))


# -- bad checkpoints ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "toy"
    Trainer(TOY, run).train()
    return run


def edited(change):
    def rewrite(path):
        data = torch.load(path, weights_only=True)
        change(data)
        torch.save(data, path)

    return rewrite


BAD_CHECKPOINTS = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "cannot be loaded: the file is truncated or damaged"),
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "cannot be loaded: the file is corrupt"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "foreign": (lambda p: torch.save(torch.nn.Linear(3, 2).state_dict(), p), "is not a hapo checkpoint: it holds a dict with keys 'weight', 'bias'"),
    "pickled objects": (lambda p: torch.save({"format": 1, "numpy": np.random.get_state()}, p), r"holds a pickled Python object \(numpy"),
    "newer format": (edited(lambda c: c.update(format=FORMAT + 1)), f"has format {FORMAT + 1}, newer than this hapo reads"),
    "missing part": (edited(lambda c: c.pop("rng")), "lacks rng"),
    "other config": (edited(lambda c: c["config"]["algo"].update(clip=0.3)), "was written with another config: algo.clip differ"),
    "cut env snapshot": (edited(lambda c: c["env"].update(elapsed=c["env"]["elapsed"][:3])), "cannot restore the environments' snapshot"),
    "cut weights": (edited(lambda c: c["critic"].popitem()), "cannot restore the networks and optimisers"),
}


@pytest.mark.parametrize("kind", BAD_CHECKPOINTS)
def test_a_bad_checkpoint_is_one_clear_error_and_the_run_stays_untouched(finished_run, tmp_path, kind, capsys):
    damage, problem = BAD_CHECKPOINTS[kind]
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run / CHECKPOINT_FILE)
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    message = re.escape(str(run / CHECKPOINT_FILE)) + ".*" + problem

    with pytest.raises(CheckpointError, match=message):
        Trainer.resume(run)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--resume", str(run), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search("^hapo-train: error: checkpoint " + message, err.splitlines()[-1])
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files


def test_load_policy_refuses_a_checkpoint_of_another_run(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("seed: 1", "seed: 2"))
    with pytest.raises(CheckpointError, match="another config: run.seed differ"):
        load_policy(run)
    (run / CHECKPOINT_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="has a config.yaml but no checkpoint.pt"):
        load_policy(run)


# -- load_policy -------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "overrides"), [("toy_reach", []), ("toy_split", ["algo.share_param=true"])])
def test_load_policy_gives_the_trained_actors_without_making_an_env(tmp_path, monkeypatch, name, overrides):
    cfg = config.load(name).with_overrides(QUIET + overrides + ["run.num_env_steps=1280", "run.eval_interval=0"])
    trainer = Trainer(cfg, tmp_path)
    trainer.train()

    def no_env(*args, **kwargs):
        raise AssertionError("load_policy made an env")

    monkeypatch.setattr(train_module, "make_env", no_env)
    loaded_config, policy = load_policy(tmp_path)
    assert loaded_config == trainer.config
    assert len({id(a) for a in policy.actors}) == len(trainer.distinct_actors)
    for actor, trained in zip(policy.actors, trainer.actors, strict=True):
        assert_same(actor.state_dict(), trained.state_dict())
    obs = [torch.randn(7, n, generator=torch.Generator().manual_seed(i)) for i, n in enumerate(trainer.env.obs_sizes)]
    assert_same(policy.act(obs, deterministic=True), trainer.policy().act(obs, deterministic=True))
