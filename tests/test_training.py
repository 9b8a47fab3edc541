import numpy as np
import pytest
import torch
import yaml

from hapo import config
from hapo.algos import ALGORITHMS
from hapo.cli import main
from hapo.config import ConfigError
from hapo.envs import toy
from hapo.logger import METRICS_FILE, read_csv
from hapo.train import Trainer

QUIET = ["run.progress=false", "run.tensorboard=false"]
# The off-policy algorithms (continuous actions only) have their own tests: tests/test_offpolicy.py.
ON_POLICY = [name for name, algorithm in ALGORITHMS.items() if not algorithm.off_policy]


def small_split(*overrides):
    return config.load("toy_split").with_overrides(QUIET + ["run.num_env_steps=2048", "run.eval_interval=2", "run.checkpoint_interval=4", *overrides])


@pytest.mark.parametrize("algo", ["happo", "mappo", "ippo", "haa2c"])
@pytest.mark.parametrize("agents", ["2", "4"])
def test_solves_the_split_game_and_sharing_stays_at_the_bound(agents, algo):
    """Separate actors reach the optimum 1; a shared actor cannot beat 2 / 2^n (Proposition 1)."""
    split = config.load("toy_split").with_overrides(QUIET + [f"algo.name={algo}", f"env.agent_conf={agents}"])
    separate = Trainer(split.with_overrides(["run.num_env_steps=6144"]))
    separate.train()
    assert separate.evaluate(40) == 1.0
    assert separate.history[-1]["train_return"] > 0.9

    shared = Trainer(split.with_overrides(["algo.share_param=true", "run.num_env_steps=3072"]))
    assert len({id(a) for a in shared.actors}) == 1
    shared.train()
    assert shared.history[-1]["train_return"] < 2 / 2 ** int(agents) + 0.15


def test_happo_solves_the_split_game_with_action_masks():
    trainer = Trainer(config.load("toy_split").with_overrides(QUIET + ["env.scenario=ToySplitMasked"]))
    assert trainer.storage.masks is not None
    trainer.train()  # ToySplitMasked raises if a masked action is ever played
    assert trainer.evaluate(40) == 1.0


@pytest.mark.parametrize(("name", "overrides"), [
    pytest.param("toy_reach", ["run.num_env_steps=20480"], id="happo"),
    pytest.param("toy_reach_hatrpo", [], id="hatrpo"),
    pytest.param("toy_reach", ["algo.name=mappo", "run.num_env_steps=20480"], id="mappo"),
    pytest.param("toy_reach", ["algo.name=ippo", "run.num_env_steps=20480"], id="ippo"),
    pytest.param("toy_reach", ["algo.name=haa2c", "run.num_env_steps=20480"], id="haa2c"),
])
def test_solves_toy_reach(name, overrides, toy_reach_returns):
    """Deterministic return closes most of the gap between doing nothing and the optimal controller."""
    trainer = Trainer(config.load(name).with_overrides(QUIET + overrides))
    trainer.train()
    learned = trainer.evaluate(200)
    idle, optimum = toy_reach_returns
    assert learned > idle + 0.9 * (optimum - idle), (learned, idle, optimum)


def test_truncated_steps_bootstrap_from_the_final_state():
    trainer = Trainer(config.load("toy_reach").with_overrides(QUIET + ["algo.rollout_length=25"]))
    s = trainer.storage
    first = s.state[0].clone()
    trainer._collect()  # ends by moving the last row to row 0 for the next iteration
    states = torch.cat([first[None], s.state[1:-1]])
    step = torch.cat([a.clamp(-1, 1) for a in s.actions], dim=-1) * toy.ToyReach.STEP
    # next_state[t] is where step t led, also where the episode was cut at t
    torch.testing.assert_close(s.next_state, states + step)
    assert s.truncated[9].all() and s.truncated[19].all() and s.truncated.sum() == 2 * s.N
    assert not torch.allclose(states[10], s.next_state[9])


@pytest.mark.parametrize("algo", ON_POLICY)
def test_two_runs_with_one_seed_are_identical_and_another_seed_differs(tmp_path, algo):
    rows = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        Trainer(small_split(f"run.seed={seed}", f"algo.name={algo}"), tmp_path / name).train()
        rows.append(read_csv(tmp_path / name / METRICS_FILE))
    assert len(rows[0]) == 8 and rows[0] == rows[1]
    assert rows[0] != rows[2]
    assert (tmp_path / "a" / METRICS_FILE).read_bytes() == (tmp_path / "b" / METRICS_FILE).read_bytes()


RESUMED = [
    *[pytest.param(scenario, algo, [], id=f"{scenario}-{algo}") for algo in ON_POLICY for scenario in ("toy_reach", "toy_split")],
    pytest.param("toy_split", "mappo", ["algo.share_param=true"], id="toy_split-mappo-shared"),
]


@pytest.mark.parametrize(("scenario", "algo", "extra"), RESUMED)
def test_resumed_run_writes_the_rows_of_an_uninterrupted_run(tmp_path, scenario, algo, extra):
    cfg = config.load(scenario).with_overrides(QUIET + [f"algo.name={algo}", "run.eval_interval=2", "run.checkpoint_interval=3", "algo.rollout_length=16", *extra])
    steps = cfg.env.num_envs * cfg.algo.rollout_length
    full = cfg.with_overrides([f"run.num_env_steps={7 * steps}"])
    Trainer(full, tmp_path / "full").train()

    interrupted = Trainer(full, tmp_path / "part")
    interrupted.train(iterations=5)  # checkpoint at 3; rows 4 and 5 are lost with the "crash"
    assert len(read_csv(tmp_path / "part" / METRICS_FILE)) == 5
    Trainer.resume(tmp_path / "part").train()
    assert read_csv(tmp_path / "part" / METRICS_FILE) == read_csv(tmp_path / "full" / METRICS_FILE)


def test_resume_to_a_longer_run(tmp_path):
    Trainer(small_split(), tmp_path / "r").train()
    trainer = Trainer.resume(tmp_path / "r", num_env_steps=4096)
    assert trainer.iteration == 8
    trainer.train()
    assert [int(r["iteration"]) for r in read_csv(tmp_path / "r" / METRICS_FILE)] == list(range(1, 17))


def test_a_run_written_before_a_config_key_existed_resumes(tmp_path):
    """Its checkpoint and config.yaml lack the key (here algo.a2c_epochs): the run used the default."""
    Trainer(small_split(), tmp_path / "r").train(iterations=4)  # checkpoint at 4
    checkpoint = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    del checkpoint["config"]["algo"]["a2c_epochs"]
    torch.save(checkpoint, tmp_path / "r" / "checkpoint.pt")
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    del saved["algo"]["a2c_epochs"]
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert Trainer.resume(tmp_path / "r").iteration == 4
    checkpoint["config"]["algo"]["a2c_epochs"] = 3  # a value the run did not have is still refused
    torch.save(checkpoint, tmp_path / "r" / "checkpoint.pt")
    with pytest.raises(ValueError, match="another config: algo.a2c_epochs differ"):
        Trainer.resume(tmp_path / "r")


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    Trainer(small_split(), tmp_path / "r").train()
    other = Trainer(small_split("algo.clip=0.3"))
    with pytest.raises(ValueError, match="another config: algo.clip differ"):
        other.load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    with pytest.raises(FileNotFoundError, match="holds no run: no checkpoint.pt"):
        Trainer.resume(tmp_path / "nothing")


def test_cli_end_to_end_and_resume(tmp_path):
    args = ["--config", "toy_split", "--log-dir", str(tmp_path), "--run-name", "cli", "--num-env-steps", "1024", "--no-progress"]
    assert main(args + ["--set", "run.eval_interval=2"]) == 0
    run = tmp_path / "cli"
    assert {p.name for p in run.iterdir()} >= {"metrics.csv", "timing.csv", "config.yaml", "checkpoint.pt", "tensorboard"}
    assert any((run / "tensorboard").iterdir())
    rows = read_csv(run / METRICS_FILE)
    assert len(rows) == 4 and rows[-1]["env_steps"] == "1024" and rows[-1]["eval_return"] != ""
    assert set(rows[0]) >= {"train_return", "eval_return", "critic/value_loss", "actor/policy_loss", "actor/approx_kl", "actor/clip_fraction", "factor/last_mean"}
    assert config.load(str(run / "config.yaml")).run.num_env_steps == 1024

    with pytest.raises(SystemExit):  # the folder holds a run
        main(args)
    assert main(["--resume", str(run), "--num-env-steps", "2048", "--no-progress"]) == 0
    assert len(read_csv(run / METRICS_FILE)) == 8
    with pytest.raises(SystemExit):
        main(["--resume", str(run), "--seed", "3"])


def test_python_api_policy_acts():
    trainer = Trainer(small_split())
    rows = trainer.train(iterations=2)
    assert [r["iteration"] for r in rows] == [1, 2] and trainer.env_steps == 2 * 256
    policy = trainer.policy()
    actions = policy.act([np.ones((5, 1), np.float32)] * 2, deterministic=True)
    assert [a.shape for a in actions] == [(5,), (5,)] and all(a.dtype == torch.int64 for a in actions)


def test_update_sees_the_observations_the_actions_were_sampled_from(monkeypatch):
    """Every row the update trains on, row 0 included, holds the observation the action was drawn from."""
    trainer = Trainer(config.load("toy_reach").with_overrides(QUIET + ["run.eval_interval=0"]))
    seen, updated = [], []
    act, scheme = trainer.joint_policy.act, trainer.update_scheme

    def recording_act(obs, **kwargs):
        seen.append([o.clone() for o in obs])
        return act(obs, **kwargs)

    def recording_update(actors, updaters, data, *args):
        updated.append([d.obs.clone() for d in data])
        return scheme(actors, updaters, data, *args)

    monkeypatch.setattr(trainer.joint_policy, "act", recording_act)
    monkeypatch.setattr(trainer, "update_scheme", recording_update)
    T, N = trainer.storage.T, trainer.storage.N
    for iteration in range(3):
        trainer.iterate()
        for agent, obs in enumerate(updated[iteration]):
            drawn_from = torch.stack([step[agent] for step in seen[iteration * T:(iteration + 1) * T]])
            assert torch.equal(obs, drawn_from.reshape(T * N, -1)), (iteration, agent)


def test_unknown_scenario_names_the_valid_ones():
    with pytest.raises(ValueError, match="'Nope'.*HalfCheetah"):
        Trainer(config.load("halfcheetah_6x1").with_overrides(QUIET + ["env.scenario=Nope"]))


@pytest.mark.parametrize("algo", ON_POLICY)
def test_mujoco_iteration_gives_finite_metrics(algo):
    """One short iteration on HalfCheetah 2x3 through the C++ env, end to end."""
    cfg = config.load("halfcheetah_2x3").with_overrides(QUIET + [
        f"algo.name={algo}", "env.num_envs=4", "algo.rollout_length=50", "run.num_env_steps=400",
        "run.eval_interval=1", "run.eval_episodes=1", "run.eval_num_envs=1",
    ])
    trainer = Trainer(cfg)
    rows = trainer.train()
    assert len(rows) == 2 and trainer.env_steps == 400
    numeric = {k: v for k, v in rows[-1].items() if isinstance(v, float)}
    assert numeric and all(np.isfinite(v) for v in numeric.values()), numeric


def test_too_few_steps_for_one_iteration():
    with pytest.raises(ConfigError, match=r"run.num_env_steps \(100\) is less than one iteration's batch: .* = 256"):
        Trainer(small_split("run.num_env_steps=100"))
