"""Your own environment: hapo.envs.register, env.entry_point, and N copies of a PettingZoo env.

References we did not write: PettingZoo's MPE (`mpe2`) stepped directly with the same seeds
and actions, and PettingZoo's own API test on the example env of docs/own_env.md.
"""

import pathlib
import re

import numpy as np
import pytest
from gymnasium import spaces
from mpe2 import simple_spread_v3
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test

import hapo.envs
from hapo.config import Config, ConfigError
from hapo.envs import EnvCheckError, ParallelEnvVector, toy
from hapo.envs.registry import lookup, make_registered
from hapo.train import Trainer, load_policy, make_env, run_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPREAD = "mpe2.simple_spread_v3:parallel_env"


def doc_example() -> str:
    text = (ROOT / "docs" / "own_env.md").read_text()
    return re.findall(r"```python\n(.*?)\n```", text, flags=re.S)[0]


@pytest.fixture
def registry_snapshot():
    """Leave the registry as the test found it."""
    before = set(hapo.envs.registered())
    yield
    for name in set(hapo.envs.registered()) - before:
        hapo.envs.unregister(name)


def test_the_docs_example_passes_pettingzoo_api_test_and_learns(registry_snapshot):
    namespace: dict = {}
    exec(compile(doc_example(), "docs/own_env.md", "exec"), namespace)
    parallel_api_test(namespace["Meet"](), num_cycles=50)
    assert namespace["before"] < -8.0, namespace["before"]  # standing still: -20 * E|x_a - x_b| = -13.3
    assert namespace["after"] > -4.0, namespace["after"]
    assert "meet" in hapo.envs.registered()


def spread(**options):
    return simple_spread_v3.parallel_env(N=3, max_cycles=25, **options)


@pytest.mark.parametrize("continuous", [False, True])
def test_copies_step_like_pettingzoo_itself(continuous):
    """Observations, state, team reward and episode ends equal stepping mpe2's copies directly."""
    n, steps = 3, 60
    vec = ParallelEnvVector(lambda: spread(continuous_actions=continuous), n, seed=7)
    refs = [spread(continuous_actions=continuous) for _ in range(n)]
    obs, state, _ = vec.reset()
    ref_obs = [r.reset(seed=7 + k)[0] for k, r in enumerate(refs)]
    rng = np.random.default_rng(0)
    assert vec.max_episode_steps == 25 and vec.state_size == 54 and vec.obs_sizes == (18, 18, 18)
    for _ in range(steps):
        for k, ref in enumerate(refs):
            for i, agent in enumerate(ref.possible_agents):
                np.testing.assert_array_equal(obs[i][k], ref_obs[k][agent])
            np.testing.assert_array_equal(state[k], ref.state())
        if continuous:
            actions = [rng.uniform(0, 1, (n, 5)).astype(np.float32) for _ in range(3)]
        else:
            actions = [rng.integers(0, 5, n) for _ in range(3)]
        obs, state, reward, terminated, truncated, info = vec.step(actions)
        for k, ref in enumerate(refs):
            agents = ref.possible_agents
            ref_obs[k], rewards, terms, truncs, _ = ref.step({a: (actions[i][k] if continuous else int(actions[i][k])) for i, a in enumerate(agents)})
            assert reward[k] == pytest.approx(np.mean([rewards[a] for a in agents]), rel=1e-6)
            assert terminated[k] == all(terms.values()) and truncated[k] == (all(truncs.values()) and not terminated[k])
            if truncated[k]:
                for i, a in enumerate(agents):
                    np.testing.assert_array_equal(info["final_obs"][i][k], ref_obs[k][a])
                ref_obs[k] = ref.reset()[0]
    vec.close()


def test_async_copies_give_the_same_numbers_as_sync():
    runs = {}
    for vector in ("sync", "async"):
        env = make_registered(lookup("spread", SPREAD), num_envs=5, seed=3, options={"N": 3, "max_cycles": 10}, vector=vector, processes=2)
        obs, state, _ = env.reset()
        rng = np.random.default_rng(1)
        trace = [state.copy()]
        for _ in range(25):
            obs, state, reward, terminated, truncated, info = env.step([rng.integers(0, 5, 5) for _ in range(3)])
            trace += [state.copy(), reward.copy(), truncated.copy(), info["final_state"].copy()]
        env.close()
        runs[vector] = trace
    for a, b in zip(runs["sync"], runs["async"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_entry_point_config_trains_and_names_the_run(tmp_path):
    config = Config().with_overrides([
        "env.scenario=spread", f"env.entry_point={SPREAD}", "env.options={N: 2, max_cycles: 10}",
        "env.num_envs=4", "algo.rollout_length=10", "run.num_env_steps=80", "run.eval_interval=1",
        "run.eval_episodes=4", "run.eval_num_envs=4", "run.progress=false", "run.tensorboard=false",
    ])
    assert run_name(config) == "spread-happo-seed1"
    trainer = Trainer(config, run_dir=tmp_path / "run")
    rows = trainer.train()
    assert len(rows) == 2 and all(np.isfinite(r["eval_return"]) for r in rows)
    assert trainer.env.action_kind == "discrete" and trainer.env.obs_sizes == (12, 12)


def test_batched_factory_is_called_once_with_num_envs_and_seed(registry_snapshot):
    calls = []

    def toy_reach(num_envs, seed, agent_conf="2x1"):
        calls.append((num_envs, seed, agent_conf))
        return toy.make("ToyReach", agent_conf, num_envs=num_envs, seed=seed)

    hapo.envs.register("my_reach", toy_reach)
    config = Config().with_overrides(["env.scenario=my_reach", "env.options={agent_conf: 1+2}", "env.num_envs=3"])
    env = make_env(config.env, 3, 11)
    assert calls == [(3, 11, "1+2")] and env.action_sizes == (1, 2)


def test_a_batched_factory_returning_something_else_is_refused(registry_snapshot):
    hapo.envs.register("not_batched", lambda num_envs, seed: object())
    with pytest.raises(ValueError, match="must return a batched env .* lacks num_envs, num_agents"):
        make_env(Config().with_overrides(["env.scenario=not_batched"]).env, 2, 0)


def broken_env(fault):
    """simple_spread with one defect."""
    env = spread()
    if fault == "no agents":
        env.possible_agents = []
    elif fault == "image observations":
        env.observation_space = lambda agent: spaces.Box(0, 1, (4, 4), np.float32)
    elif fault == "dict actions":
        env.action_space = lambda agent: spaces.Dict({"move": spaces.Discrete(5)})
    elif fault == "no step":
        env.step = None
    return env


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("no agents", "has no possible_agents"),
        ("image observations", r"agent 'agent_0''s observation space must be a 1-D gymnasium.spaces.Box, got Box\(0.0, 1.0, \(4, 4\)"),
        ("dict actions", "agent 'agent_0''s action space must be a gymnasium.spaces.Box or Discrete"),
        ("no step", r"has no step\(\)"),
    ],
)
def test_a_bad_pettingzoo_env_gets_a_message_that_says_what_is_wrong(fault, match):
    with pytest.raises(EnvCheckError, match=match):
        ParallelEnvVector(lambda: broken_env(fault), 2)


def test_agents_that_leave_early_are_refused_with_the_agents_named():
    def leaving():
        env = spread()
        step = env.step

        def step_and_drop(actions):
            obs, rewards, terms, truncs, infos = step(actions)
            terms = {**terms, "agent_1": True}
            return obs, rewards, terms, truncs, infos

        env.step = step_and_drop
        return env

    env = ParallelEnvVector(leaving, 2)
    env.reset()
    with pytest.raises(EnvCheckError, match=r"agents \['agent_1'\] ended their episode before the others"):
        env.step([np.zeros(2, np.int64)] * 3)


def test_without_state_the_critic_sees_the_observations_concatenated():
    def stateless():
        env = spread()
        env.state_space = None
        return env

    env = ParallelEnvVector(stateless, 2, seed=0)
    obs, state, _ = env.reset()
    assert env.state_size == 3 * 18
    np.testing.assert_array_equal(state, np.concatenate(obs, axis=1))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: hapo.envs.register("HalfCheetah", spread), ValueError, "'HalfCheetah' is a built-in scenario"),
        (lambda: hapo.envs.register("", spread), ValueError, "non-empty string"),
        (lambda: hapo.envs.register("x", 3), TypeError, "must be callable"),
        (lambda: hapo.envs.unregister("never_registered"), KeyError, "no environment named 'never_registered'"),
        (lambda: lookup("NoSuchTask"), ValueError, "unknown scenario 'NoSuchTask', expected one of: .*HalfCheetah.*ToySplit.*simple_spread"),
        (lambda: lookup("x", "no_colon"), ValueError, "must look like 'package.module:function'"),
        (lambda: lookup("x", "no_such_module_xyz:f"), ValueError, "cannot import 'no_such_module_xyz'"),
        (lambda: lookup("x", "mpe2.simple_spread_v3:nothing"), ValueError, "has no attribute 'nothing'"),
        (lambda: Config().with_overrides(["env.options=3"]), ConfigError, "env.options must be a mapping"),
        (lambda: Config().with_overrides(["env.vector=threads"]), ConfigError, "env.vector must be one of sync, async"),
        (lambda: ParallelEnvVector(spread, 0), ValueError, "num_envs must be a positive int"),
    ],
)
def test_bad_registrations_and_names_raise_clear_errors(call, error, match, registry_snapshot):
    with pytest.raises(error, match=match):
        call()


def test_registering_twice_needs_overwrite(registry_snapshot):
    hapo.envs.register("twice", spread)
    with pytest.raises(ValueError, match="registered already"):
        hapo.envs.register("twice", spread)
    hapo.envs.register("twice", spread, overwrite=True)


def test_wrong_action_shapes_name_the_agent():
    env = ParallelEnvVector(lambda: spread(continuous_actions=True), 2)
    env.reset()
    with pytest.raises(ValueError, match=r"actions\[1\] must have shape \(2, 5\), got \(2, 4\)"):
        env.step([np.zeros((2, 5)), np.zeros((2, 4)), np.zeros((2, 5))])
    with pytest.raises(ValueError, match=r"actions\[0\] holds NaN"):
        env.step([np.full((2, 5), np.nan), np.zeros((2, 5)), np.zeros((2, 5))])


class MixedMeet(ParallelEnv):
    """The docs' Meet with a mixed team: `a` moves by a continuous amount, `b` steps left, stays or right."""

    metadata = {"name": "mixed_meet_v0"}

    def __init__(self, horizon=20):
        self.possible_agents, self.agents, self.horizon = ["a", "b"], [], horizon
        self.state_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.spaces = {"a": spaces.Box(-1.0, 1.0, (1,), np.float32), "b": spaces.Discrete(3)}
        self.obs_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.rng = np.random.default_rng()

    def observation_space(self, agent):
        return self.obs_space

    def action_space(self, agent):
        return self.spaces[agent]

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x, self.t, self.agents = self.rng.uniform(-1, 1, 2), 0, list(self.possible_agents)
        return self.observe(), {a: {} for a in self.agents}

    def step(self, actions):
        self.x[0] += 0.1 * float(np.clip(actions["a"][0], -1, 1))
        self.x[1] += 0.1 * (int(actions["b"]) - 1)
        self.t += 1
        reward, over = -abs(self.x[0] - self.x[1]), self.t >= self.horizon
        if over:
            self.agents = []
        everyone = self.possible_agents
        return self.observe(), dict.fromkeys(everyone, reward), dict.fromkeys(everyone, False), dict.fromkeys(everyone, over), {a: {} for a in everyone}

    def state(self):
        return self.x.astype(np.float32)

    def observe(self):
        a, b = self.x.astype(np.float32)
        return {"a": np.array([a, b], np.float32), "b": np.array([b, a], np.float32)}


@pytest.mark.parametrize("algo", ["happo", "hatrpo"])
def test_a_mixed_team_learns_and_its_checkpoint_rebuilds_both_kinds(algo, registry_snapshot, tmp_path):
    hapo.envs.register("mixed_meet", MixedMeet)
    config = Config().with_overrides([
        "env.scenario=mixed_meet", f"algo.name={algo}", "env.num_envs=16", "algo.rollout_length=20", "run.num_env_steps=16000",
        "run.eval_interval=25", "run.eval_episodes=32", "run.eval_num_envs=16", "run.progress=false", "run.tensorboard=false",
    ])
    trainer = Trainer(config, run_dir=tmp_path / "run")
    assert trainer.env.action_kind == "mixed" and trainer.env.action_kinds == ("continuous", "discrete")
    assert [a.kind for a in trainer.actors] == ["continuous", "discrete"]
    before = trainer.evaluate()
    trainer.train()
    after = trainer.history[-1]["eval_return"]
    assert after > before + 3, (before, after)
    trainer.save_checkpoint()
    _, policy = load_policy(tmp_path / "run")
    assert [a.kind for a in policy.actors] == ["continuous", "discrete"]
