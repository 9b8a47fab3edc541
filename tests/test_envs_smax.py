"""SMAX (JaxMARL's SMAC-style battles) as a batched env, against JaxMARL's env stepped directly."""

import builtins
import json

import numpy as np
import pytest

import hapo.envs
from hapo import config as config_lib
from hapo.config import Config
from hapo.envs import smax
from hapo.experiments.evaluate import main as evaluate_main
from hapo.train import Trainer, run_name

N = 3


def random_actions(rng, masks):
    """A uniformly random available action per env and agent."""
    return [np.array([rng.choice(np.flatnonzero(mask[k])) for k in range(len(mask))]) for mask in masks]


def test_copies_equal_jaxmarls_own_battles():
    """Same keys: observations, world state, mean reward, masks, alive allies, episode ends and wins equal
    JaxMARL's step_env/reset called battle by battle (the auto-reset included)."""
    # Imported here, not at collection: JAX's threads make forks of the test process unsafe.
    import jax
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

    env = hapo.envs.make("SMAX", "2s3z", num_envs=N, seed=5)
    ref = HeuristicEnemySMAX(scenario=map_name_to_scenario("2s3z"))
    agents = ref.agents
    key = jax.random.PRNGKey(5)
    key, sub = jax.random.split(key)
    states = []
    obs, state, info = env.reset()
    for k, copy_key in enumerate(jax.random.split(sub, N)):
        ref_obs, ref_state = ref.reset(copy_key)
        states.append(ref_state)
        np.testing.assert_allclose(np.stack([obs[i][k] for i in range(len(agents))]), np.stack([ref_obs[a] for a in agents]), atol=1e-5)
    rng = np.random.default_rng(0)
    ends = wins = 0
    for _ in range(150):
        actions = random_actions(rng, info["action_mask"])
        obs, state, reward, terminated, truncated, info = env.step(actions)
        key, sub = jax.random.split(key)
        for k, copy_key in enumerate(jax.random.split(sub, N)):
            step_key, reset_key = jax.random.split(copy_key)
            ref_obs, after, rewards, dones, _ = ref.step_env(step_key, states[k], {a: actions[i][k] for i, a in enumerate(agents)})
            assert reward[k] == pytest.approx(np.mean([rewards[a] for a in agents]), abs=1e-6)
            ended = bool(dones["__all__"])
            assert bool(terminated[k] | truncated[k]) == ended
            np.testing.assert_allclose(info["final_state"][k], ref_obs["world_state"], atol=1e-5)
            if ended:
                alive = np.asarray(after.state.unit_alive)
                assert info["won"][k] == (not alive[ref.num_allies:].any() and alive[: ref.num_allies].any())
                assert truncated[k] == (alive[: ref.num_allies].any() and alive[ref.num_allies:].any())
                ends += 1
                wins += int(info["won"][k])
                ref_obs, after = ref.reset(reset_key)
            else:
                assert not info["won"][k]
            states[k] = after
            np.testing.assert_allclose(np.stack([obs[i][k] for i in range(len(agents))]), np.stack([ref_obs[a] for a in agents]), atol=1e-5)
            np.testing.assert_allclose(state[k], ref_obs["world_state"], atol=1e-5)
            avail = ref.get_avail_actions(after)
            np.testing.assert_array_equal(np.stack([info["action_mask"][i][k] for i in range(len(agents))]), np.stack([avail[a] for a in agents]).astype(bool))
            np.testing.assert_array_equal([info["active"][i][k] for i in range(len(agents))], np.asarray(after.state.unit_alive[: ref.num_allies]))
    assert ends > 0


def test_snapshot_restore_continues_exactly():
    env = smax.make("3m", num_envs=2, seed=1)
    obs, state, info = env.reset()
    rng = np.random.default_rng(2)
    for _ in range(5):
        obs, state, reward, terminated, truncated, info = env.step(random_actions(rng, info["action_mask"]))
    snapshot = env.snapshot()
    planned = [random_actions(rng, info["action_mask"]) for _ in range(30)]
    masks = [m.copy() for m in info["action_mask"]]

    def play():
        trace = []
        for actions in planned:
            actions = [np.where(m[np.arange(2), a], a, 4) for m, a in zip(masks, actions)]  # stop when no longer available
            out = env.step(actions)
            trace += [out[1].copy(), out[2].copy(), out[3].copy()]
        return trace

    first = play()
    env.restore(snapshot)
    for a, b in zip(first, play(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_trainer_runs_an_smax_map_logs_its_win_rate_and_hapo_eval_prints_it(tmp_path, capsys):
    config = Config().with_overrides([
        "env.scenario=SMAX", "env.agent_conf=3m", "env.num_envs=4", "algo.rollout_length=20",
        "run.num_env_steps=80", "run.eval_interval=1", "run.eval_episodes=4", "run.eval_num_envs=4",
        "run.progress=false", "run.tensorboard=false",
    ])
    assert run_name(config) == "SMAX-3m-happo-seed1"
    trainer = Trainer(config, run_dir=tmp_path / "run")
    (row,) = trainer.train()
    assert np.isfinite(row["train_return"]) and np.isfinite(row["eval_return"])
    assert 0.0 <= row["eval_win_rate"] <= 1.0
    trainer.save_checkpoint()
    assert evaluate_main([str(tmp_path / "run"), "--episodes", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["wins"]) == 6 and report["win_rate"] == pytest.approx(np.mean(report["wins"]))
    assert report["summary"]["win"]["mean"] == pytest.approx(report["win_rate"])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda env: env.step([np.zeros(2, np.int64)] * 2), r"one action array per agent \(3\), got 2"),
        (lambda env: env.step([np.zeros(2, np.int64), np.zeros(2, np.int64), np.zeros(3, np.int64)]), r"actions\[2\] must be integers of shape \(2,\)"),
        (lambda env: env.step([np.zeros(2, np.float32)] * 3), r"actions\[0\] must be integers"),
        (lambda env: env.step([np.full(2, 99)] * 3), r"actions\[0\] must be in \[0, 8\), got values from 99 to 99"),
    ],
)
def test_bad_actions_name_the_agent(call, match):
    env = smax.make("3m", num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match=match):
        call(env)


def test_unknown_map_lists_the_maps():
    with pytest.raises(ValueError, match="unknown SMAX map '4x4'; maps: .*3s5z"):
        hapo.envs.make("SMAX", "4x4")


def test_without_jaxmarl_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_jax(name, *args, **kwargs):
        if name.startswith(("jax", "jaxmarl")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jax)
    with pytest.raises(ImportError, match=r'SMAX needs jax and jaxmarl: pip install "hapo\[smax\]"'):
        smax.make("3m")


def test_happo_learns_to_win_3m():
    """38,400 steps (at a learning rate raised for the test): from an untrained team that never
    wins to one that wins a good share of its deterministic evaluation battles."""
    cfg = config_lib.load("smax_3m").with_overrides([
        "run.num_env_steps=38400", "run.eval_interval=12", "algo.actor_lr=0.001", "algo.critic_lr=0.001",
        "run.progress=false", "run.tensorboard=false",
    ])
    trainer = Trainer(cfg)
    untrained = trainer.evaluate()
    assert trainer.last_win_rate == 0.0
    rows = trainer.train()
    final = rows[-1]
    assert final["eval_win_rate"] >= 0.25, final
    assert final["eval_return"] > untrained + 0.8, (untrained, final["eval_return"])
    assert rows[-1]["train_return"] > rows[0]["train_return"] + 0.3
