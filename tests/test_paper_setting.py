"""The authors' setting as options: networks, std, action clamping, learning-rate decay, and the
built-in configs against the reference table of their tuned hyperparameters."""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hapo import config as config_lib
from hapo.config import ConfigError, ModelConfig
from hapo.evaluation import env_actions
from hapo.models import Actor, JointPolicy
from hapo.models.networks import MLP
from hapo.train import Trainer

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference" / "harl_tuned_mamujoco.md"


def test_every_layer_layernorm_follows_each_hidden_activation():
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_sizes=[16, 8], layernorm="every_layer")
    net = MLP(5, 3, cfg, out_gain=1.0)
    assert [n.normalized_shape for n in net.hidden_norms] == [(16,), (8,)]
    assert net.norm.normalized_shape == (5,)
    for norm in [net.norm, *net.hidden_norms]:  # non-trivial affine parameters
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    x = torch.randn(7, 5)

    def layer_norm(v, norm):  # written out: (v - mean) / sqrt(var + eps) * weight + bias
        mean, var = v.mean(-1, keepdim=True), v.var(-1, unbiased=False, keepdim=True)
        return (v - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias

    h = layer_norm(x, net.norm)
    for layer, norm in zip(net.layers[:-1], net.hidden_norms):
        h = layer_norm(torch.relu(h @ layer.weight.T + layer.bias), norm)
    expected = h @ net.layers[-1].weight.T + net.layers[-1].bias
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)
    assert MLP(5, 3, ModelConfig(layernorm="none"), 1.0).norm is None


@pytest.mark.parametrize("std", ["exp", "sigmoid"])
@pytest.mark.parametrize("layernorm", ["none", "input", "every_layer"])
def test_fused_policy_matches_each_actor_in_every_setting(std, layernorm):
    torch.manual_seed(1)
    cfg = ModelConfig(hidden_sizes=[16, 8], layernorm=layernorm, std=std, output_gain=1.0)
    actors = [Actor(6, 3, "continuous", cfg) for _ in range(3)]
    with torch.no_grad():
        for actor in actors:
            for norm in [m for m in actor.modules() if isinstance(m, torch.nn.LayerNorm)]:
                torch.nn.init.normal_(norm.weight)
                torch.nn.init.normal_(norm.bias)
            for p in [q for name, q in actor.named_parameters() if name in ("log_std", "std_logit")]:
                p.normal_()
    policy = JointPolicy(actors)
    obs = [torch.randn(50_000, 6) for _ in actors]
    means = policy.act(obs, deterministic=True)
    samples = policy.act(obs, generator=torch.Generator().manual_seed(0))
    for actor, o, mean, sample in zip(actors, obs, means, samples):
        dist = actor.distribution(o)
        torch.testing.assert_close(mean, dist.mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close((sample - mean).std(0), dist.stddev[0], rtol=0.03, atol=0.0)


def test_sigmoid_std_starts_at_half_sigmoid_one_and_stays_below_half():
    actor = Actor(4, 2, "continuous", ModelConfig(std="sigmoid"))
    assert not hasattr(actor, "log_std")
    std = actor.distribution(torch.zeros(3, 4)).stddev
    torch.testing.assert_close(std, torch.full((3, 2), 0.5 / (1 + math.exp(-1.0))))
    with torch.no_grad():
        actor.std_logit.copy_(torch.tensor([40.0, -40.0]))
    std = actor.distribution(torch.zeros(1, 4)).stddev[0]
    assert 0.5 - 1e-6 < std[0].item() <= 0.5 and 0 < std[1].item() < 1e-17
    # Gradient of log std: d/dtheta log(0.5 sigmoid(theta)) = 1 - sigmoid(theta).
    with torch.no_grad():
        actor.std_logit.copy_(torch.tensor([0.3, -1.2]))
    actor.current_log_std().sum().backward()
    torch.testing.assert_close(actor.std_logit.grad, 1 - torch.sigmoid(torch.tensor([0.3, -1.2])))


def test_per_vector_standardisation_is_redundant_under_the_input_layernorm():
    # The authors standardise each observation over its own entries before the network; an
    # input LayerNorm does the same again, so the two differ only through LayerNorm's epsilon:
    # by a factor per vector of sqrt((var + eps) / ((1 + eps) var)), within eps (1 + 1 / var) of 1.
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 19)) * rng.uniform(0.1, 30, size=(64, 1)) + rng.normal(size=(64, 1))
    var = obs.var(-1, keepdims=True)
    standardised = (obs - obs.mean(-1, keepdims=True)) / np.sqrt(var)
    eps = 1e-5
    ln = lambda x: F.layer_norm(torch.from_numpy(x), (19,), eps=eps).numpy()  # noqa: E731
    ratio = ln(standardised) / ln(obs)
    np.testing.assert_allclose(ratio, np.sqrt((var + eps) / ((1 + eps) * var)) * np.ones_like(ratio), rtol=1e-9)
    assert np.all(np.abs(ratio - 1) <= eps * (1 + 1 / var))


def _tiny_halfcheetah(*overrides: str) -> Trainer:
    cfg = config_lib.load("halfcheetah_2x3").with_overrides([
        "env.num_envs=2", "algo.rollout_length=8", "run.num_env_steps=64", "run.eval_interval=0",
        "run.progress=false", "run.tensorboard=false", "algo.ppo_epochs=1", "algo.critic_epochs=1", *overrides,
    ])
    return Trainer(cfg)


@pytest.mark.parametrize("clip", [True, False])
def test_clip_actions_decides_what_the_control_cost_sees(clip):
    trainer = _tiny_halfcheetah(f"env.clip_actions={str(clip).lower()}", "model.std=exp", "model.initial_std=1e-4")
    with torch.no_grad():  # every mean action 3.0, three times the actuators' range
        for actor in trainer.actors:
            actor.net.layers[-1].weight.zero_()
            actor.net.layers[-1].bias.fill_(3.0)
    trainer.joint_policy.refresh()
    env = trainer.env
    _, _, info = env.reset()
    actions = trainer.joint_policy.act([torch.zeros(2, n) for n in env.obs_sizes], deterministic=True)
    _, _, reward, _, _, info = env.step(env_actions(env, actions, trainer.config.env.clip_actions))
    sent = 3.0 if not clip else 1.0
    # Gymnasium's HalfCheetah control cost: 0.1 * sum(action^2) over the 6 actuators.
    np.testing.assert_allclose(info["reward_ctrl"], -0.1 * 6 * sent**2, rtol=1e-6)


def test_linear_lr_decay_scales_actors_and_critic_per_iteration():
    trainer = _tiny_halfcheetah("algo.lr_decay=linear", "algo.actor_lr=0.002", "algo.critic_lr=0.004")
    assert trainer.total_iterations == 4
    trainer.train(iterations=3)  # the third iteration (k = 2 of K = 4) used lr * (1 - 2/4)
    for updater in trainer.updaters:
        assert [g["lr"] for g in updater.optimizer.param_groups] == [pytest.approx(0.001)]
    assert [g["lr"] for g in trainer.critic_update.optimizer.param_groups] == [pytest.approx(0.002)]
    constant = _tiny_halfcheetah("algo.actor_lr=0.002")
    constant.train(iterations=3)
    assert constant.updaters[0].optimizer.param_groups[0]["lr"] == 0.002


# -- the built-in configs against the reference table --------------------------------------
# Reference key -> (section.key, how the value reads in our config).
KEYS = {
    "lr": ("algo.actor_lr", float), "critic_lr": ("algo.critic_lr", float), "ppo_epoch": ("algo.ppo_epochs", int),
    "actor_num_mini_batch": ("algo.num_minibatches", int), "clip_param": ("algo.clip", float),
    "critic_epoch": ("algo.critic_epochs", int), "critic_num_mini_batch": ("algo.critic_num_minibatches", int),
    "entropy_coef": ("algo.entropy_coef", float), "episode_length": ("algo.rollout_length", int),
    "fixed_order": ("algo.fixed_order", lambda v: v == "true"), "share_param": ("algo.share_param", lambda v: v == "true"),
    "kl_threshold": ("algo.kl_threshold", float), "ls_step": ("algo.ls_steps", int),
    "accept_ratio": ("algo.accept_ratio", float), "backtrack_coeff": ("algo.backtrack_coeff", float),
    "use_linear_lr_decay": ("algo.lr_decay", lambda v: "linear" if v == "true" else "none"),
    "a2c_epoch": ("algo.a2c_epochs", int),
}
SHARED = {
    "hidden_sizes": ("model.hidden_sizes", lambda v: [int(x) for x in re.findall(r"\d+", v)]),
    "gamma": ("algo.gamma", float), "gae_lambda": ("algo.gae_lambda", float), "max_grad_norm": ("algo.max_grad_norm", float),
    "huber_delta": ("algo.huber_delta", float), "opti_eps": ("algo.adam_eps", float), "gain": ("model.output_gain", float),
    "eval_episodes": ("run.eval_episodes", int), "n_eval_rollout_threads": ("run.eval_num_envs", int),
    "n_rollout_threads": ("env.num_envs", int), "eval_interval": ("run.eval_interval", int),
    "activation_func": ("model.activation", lambda v: v.strip('"')),
    "use_valuenorm": ("algo.value_normalizer", lambda v: v == "true"),
    "use_clipped_value_loss": ("algo.value_clip", lambda v: v == "true"),
}


# The off-policy table's keys (HARL's eval_interval counts steps of its vector env: ours, iterations of
# train_interval such steps; final_activation_func "tanh" is built into hapo.models.DeterministicActor).
OFF_POLICY_KEYS = {
    "expl_noise": ("algo.expl_noise", float), "fixed_order": ("algo.fixed_order", lambda v: v == "true"),
    "n_step": ("algo.n_step", int), "noise_clip": ("algo.noise_clip", float), "policy_freq": ("algo.policy_freq", int),
    "policy_noise": ("algo.policy_noise", float), "update_per_train": ("algo.update_per_train", float),
}
OFF_POLICY_SHARED = {
    "activation_func": SHARED["activation_func"], "hidden_sizes": SHARED["hidden_sizes"], "gamma": SHARED["gamma"],
    "eval_episodes": SHARED["eval_episodes"], "n_eval_rollout_threads": SHARED["n_eval_rollout_threads"],
    "n_rollout_threads": SHARED["n_rollout_threads"], "lr": KEYS["lr"], "critic_lr": KEYS["critic_lr"],
    "share_param": KEYS["share_param"], "use_linear_lr_decay": KEYS["use_linear_lr_decay"],
    "batch_size": ("algo.batch_size", int), "buffer_size": ("algo.buffer_size", int), "polyak": ("algo.polyak", float),
    "train_interval": ("algo.train_interval", int), "warmup_steps": ("algo.warmup_steps", int),
}


def _reference_rows(family: str = "on-policy") -> tuple[dict[str, str], list[dict[str, str]]]:
    """The shared values and the rows of the reference table's "on-policy" or "off-policy" section."""
    assert REFERENCE.is_file(), f"the reference table {REFERENCE} is missing (../shared beside the repository)"
    text = REFERENCE.read_text()
    section = text.split(f"## {family}", 1)[1].split("\n## ", 1)[0]
    shared = dict(re.findall(r"(\w+)=(\[[^\]]*\]|\"\w+\"|[^,\s]+)", section.split("Same in every file:", 1)[1].splitlines()[0]))
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return shared, rows


def _get(cfg, key: str):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def test_builtin_paper_configs_hold_the_reference_values():
    shared, rows = _reference_rows()
    checked = 0
    for row in rows:
        if row["algo"] not in ("happo", "hatrpo", "mappo", "haa2c"):
            continue
        scenario, conf = row["task"].split()
        name = config_lib.tuned_name(scenario, conf, row["algo"])
        assert name is not None, f"no built-in config for {row['task']} {row['algo']}"
        cfg = config_lib.load(name)
        assert (cfg.env.scenario, cfg.env.agent_conf, cfg.algo.name) == (scenario, conf, row["algo"])
        assert (cfg.env.obs_mode, cfg.env.clip_actions, cfg.model.layernorm, cfg.model.std) == ("global", False, "every_layer", "sigmoid")
        assert cfg.run.num_env_steps == 10_000_000
        for key, (ours, read) in {**KEYS, **SHARED}.items():
            value = row.get(key) or shared.get(key)
            if value:
                assert _get(cfg, ours) == read(value), f"{name}: {ours} is {_get(cfg, ours)!r}, the reference {key}={value}"
        checked += 1
    assert checked == 22


def test_builtin_off_policy_configs_hold_the_reference_values():
    shared, rows = _reference_rows("off-policy")
    assert shared["final_activation_func"] == '"tanh"' and int(shared["eval_interval"]) == 10_000
    checked = 0
    for row in rows:
        scenario, conf = row["task"].split()
        name = config_lib.tuned_name(scenario, conf, row["algo"])
        assert name == f"{scenario.lower()}_{conf}_{row['algo']}", f"no built-in config for {row['task']} {row['algo']}"
        cfg = config_lib.load(name)
        assert (cfg.env.scenario, cfg.env.agent_conf, cfg.algo.name) == (scenario, conf, row["algo"])
        assert (cfg.env.obs_mode, cfg.model.layernorm, cfg.run.num_env_steps) == ("global", "none", 10_000_000)
        assert cfg.run.eval_interval * cfg.algo.train_interval == int(shared["eval_interval"])
        for key, (ours, read) in {**OFF_POLICY_KEYS, **OFF_POLICY_SHARED}.items():
            value = row.get(key) or shared.get(key)
            if not value:  # a TD3 column left empty in a DDPG row: the key does not apply to it
                assert key in row and row["algo"].endswith("ddpg"), f"{key} is in neither the {row['task']} {row['algo']} row nor the shared values"
                continue
            assert _get(cfg, ours) == read(value), f"{name}: {ours} is {_get(cfg, ours)!r}, the reference {key}={value}"
        checked += 1
    assert checked == 21 == len(rows)


def test_ippo_configs_are_mappos_with_ippo_critics():
    """IPPO is not in the table: each MaMuJoCo task's IPPO config is its MAPPO config but for the algorithm."""
    mappo = [name for name in config_lib.builtin_names() if name.endswith("_mappo") and config_lib.load(name).env.obs_mode == "global"]
    assert len(mappo) == 6
    for name in mappo:
        ippo = config_lib.load(name.replace("_mappo", "_ippo")).to_dict()
        assert ippo["algo"].pop("name") == "ippo"
        expected = config_lib.load(name).to_dict()
        assert expected["algo"].pop("name") == "mappo"
        assert ippo == expected, name


def test_config_base_chains_and_refuses_cycles(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: halfcheetah_2x3\nrun:\n  seed: 7\n")
    (tmp_path / "child.yaml").write_text("base: mine.yaml\nalgo:\n  clip: 0.3\n")
    cfg = config_lib.load(str(tmp_path / "child.yaml"))
    assert (cfg.run.seed, cfg.algo.clip, cfg.algo.ppo_epochs, cfg.env.obs_mode) == (7, 0.3, 15, "global")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="is its own base"):
        config_lib.load(str(tmp_path / "a.yaml"))
    (tmp_path / "bad.yaml").write_text("base: 3\n")
    with pytest.raises(ConfigError, match="base in .* must be a config name or file"):
        config_lib.load(str(tmp_path / "bad.yaml"))


def test_global_obs_mode_is_for_mujoco_tasks_only():
    cfg = config_lib.load("toy_reach").with_overrides(["env.obs_mode=global", "run.progress=false"])
    with pytest.raises(ValueError, match="obs_mode must be 'local'"):
        Trainer(cfg)
    with pytest.raises(ConfigError, match="env.obs_mode must be one of local, global"):
        config_lib.Config().with_overrides(["env.obs_mode=partial"])


def test_moving_average_normalizer_follows_the_debiased_averages():
    from hapo.models import MovingAverageNormalizer

    rng = np.random.default_rng(0)
    batches = [rng.normal(5.0, 3.0, size=n) for n in (7, 64, 1, 300)]
    normalizer = MovingAverageNormalizer(beta=0.9)
    mean = mean_sq = weight = 0.0  # the formula, in NumPy
    for batch in batches:
        normalizer.update(torch.from_numpy(batch).float())
        batch = batch.astype(np.float32).astype(np.float64)
        mean, mean_sq, weight = 0.9 * mean + 0.1 * batch.mean(), 0.9 * mean_sq + 0.1 * np.mean(batch**2), 0.9 * weight + 0.1
    expected_mean = mean / weight
    expected_std = np.sqrt(max(mean_sq / weight - expected_mean**2, 1e-2))
    x = torch.linspace(-10, 10, 5)
    np.testing.assert_allclose(normalizer.normalize(x).numpy(), ((x.double().numpy() - expected_mean) / expected_std), rtol=1e-6)
    torch.testing.assert_close(normalizer.denormalize(normalizer.normalize(x)), x)
    constant = MovingAverageNormalizer()
    constant.update(torch.full((10,), 3.0))
    assert constant.std().item() == pytest.approx(0.1)  # the variance floor, 0.01


def test_moving_average_statistics_update_every_critic_minibatch_deterministically():
    overrides = ["algo.value_norm_stats=moving_average", "algo.critic_epochs=3", "algo.critic_num_minibatches=2"]
    trainer = _tiny_halfcheetah(*overrides)
    head = trainer.critics.heads[0]
    trainer.train(iterations=1)
    # Six minibatch updates of weight 1 - beta each: the debiasing term is 1 - beta^6.
    assert head.normalizer.debiasing_term.item() == pytest.approx(1 - 0.99999**6)
    again = _tiny_halfcheetah(*overrides)
    again.train(iterations=1)
    assert trainer.history == again.history
