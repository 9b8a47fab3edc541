"""HATRPO's per-agent step against references we did not write, and the trainer with --algo hatrpo.

References: KL and log-probabilities from torch.distributions on the networks' raw outputs
(masks applied as -inf logits), the gradient from torch.func, an explicit Fisher matrix
from autograd Jacobians and the distributions' closed-form Fisher in their parameters,
and torch.linalg.solve.
"""

import math

import pytest
import torch
import yaml
from torch.distributions import Categorical, Normal, kl_divergence
from torch.func import functional_call, grad, jacrev
from torch.nn.utils import parameters_to_vector

from hapo import config
from hapo.algos import AgentBatch, HatrpoUpdate
from hapo.cli import main
from hapo.config import AlgoConfig, ModelConfig
from hapo.logger import METRICS_FILE, read_csv
from hapo.models import Actor
from hapo.train import Trainer

QUIET = ["run.progress=false", "run.tensorboard=false", "algo.name=hatrpo"]
TINY = ModelConfig(hidden_sizes=[5], layernorm="none", output_gain=1.0)
BATCH = 64


def net_output(actor, weights, obs):
    net = {k[len("net."):]: v for k, v in weights.items() if k.startswith("net.")}
    return functional_call(actor.net, net, (obs,))


def distribution(actor, weights, obs, mask):
    """The actor's distribution built by torch.distributions alone from its network's output."""
    out = net_output(actor, weights, obs)
    if actor.kind == "continuous":
        return Normal(out, weights["log_std"].exp().expand_as(out))
    return Categorical(logits=out if mask is None else out.masked_fill(~mask, -math.inf))


def weights_of(actor):
    return {k: v.detach().clone() for k, v in actor.named_parameters()}


def reference_kl(actor, old_weights, new_weights, obs, mask):
    kl = kl_divergence(distribution(actor, old_weights, obs, mask), distribution(actor, new_weights, obs, mask))
    return (kl.sum(-1) if actor.kind == "continuous" else kl).mean()


def make_batch(actor, seed, masked=False, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(BATCH, actor.obs_size, generator=gen, dtype=dtype)
    mask = None
    if masked:
        mask = torch.rand(BATCH, actor.action_size, generator=gen) > 0.3
        mask[torch.arange(BATCH), torch.randint(actor.action_size, (BATCH,), generator=gen)] = True
    with torch.no_grad():
        old_params = actor.dist_params(obs, mask)
        dist = actor.distribution_from_params(old_params)
        if actor.kind == "continuous":
            actions = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen, dtype=dtype)
        else:
            gumbel = -torch.log(-torch.log(torch.rand(old_params.shape, generator=gen, dtype=dtype)))
            actions = (old_params + gumbel).argmax(-1)
        old_log_prob = actor.log_prob_from_params(old_params, actions)
    advantages = torch.randn(BATCH, generator=gen, dtype=dtype)
    factor = torch.exp(0.2 * torch.randn(BATCH, generator=gen, dtype=dtype))
    return AgentBatch(obs, actions, mask, advantages, old_log_prob, old_params, factor)


def make_actor(kind, seed, obs=3, act=2, cfg=TINY, dtype=torch.float32):
    torch.manual_seed(seed)
    return Actor(obs, act, kind, cfg).to(dtype)


CASES = [("continuous", False), ("discrete", False), ("discrete", True)]


@pytest.mark.parametrize(("kind", "masked"), CASES)
@pytest.mark.parametrize("delta", [0.01, 0.5])
def test_every_accepted_step_is_inside_the_trust_region(kind, masked, delta):
    """Along a run of updates on fresh batches, each accepted step's KL (recomputed) is <= delta."""
    actor = make_actor(kind, 0, act=3)
    update = HatrpoUpdate(actor, AlgoConfig(kl_threshold=delta))
    outcomes = set()
    for seed in range(12):
        batch = make_batch(actor, seed, masked)
        before = weights_of(actor)
        metrics = update.update(batch, torch.Generator())
        after = weights_of(actor)
        kl = reference_kl(actor, before, after, batch.obs, batch.action_mask).item()
        if metrics["accepted"]:
            assert kl <= delta, (seed, kl)
            assert metrics["kl"] == pytest.approx(kl, rel=1e-4, abs=1e-9)
            with torch.no_grad():
                log_ratio = distribution(actor, after, batch.obs, batch.action_mask).log_prob(batch.actions)
                log_ratio = (log_ratio.sum(-1) if kind == "continuous" else log_ratio) - batch.old_log_prob
                gain = (log_ratio.exp() * batch.factor * batch.advantages).mean() - (batch.factor * batch.advantages).mean()
            assert metrics["surrogate_improvement"] == pytest.approx(gain.item(), rel=1e-4, abs=1e-6) and gain > 0
            outcomes.add("first" if metrics["backtracks"] == 0 else "backtracked")
        else:
            assert kl == 0.0 and metrics["rejected"] == 1.0
    assert "first" in outcomes
    if delta > 0.1:  # far from the old policy the quadratic KL model is optimistic: the search backtracks
        assert "backtracked" in outcomes


@pytest.mark.parametrize(("kind", "masked"), CASES)
def test_rejected_line_search_leaves_the_parameters_bit_identical(kind, masked):
    """A single candidate that overshoots a huge trust region by far is rejected; nothing moves."""
    actor = make_actor(kind, 1, act=3)
    update = HatrpoUpdate(actor, AlgoConfig(kl_threshold=50.0, ls_steps=1))
    batch = make_batch(actor, 3, masked)
    before = [p.detach().clone() for p in actor.parameters()]
    metrics = update.update(batch, torch.Generator())
    assert metrics["rejected"] == 1.0 and metrics["accepted"] == 0.0 and metrics["backtracks"] == 1.0
    assert metrics["kl"] == 0.0 and metrics["surrogate_improvement"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, actor.parameters(), strict=True))


def test_zero_advantages_take_no_step():
    actor = make_actor("continuous", 2)
    batch = make_batch(actor, 4)
    batch.advantages.zero_()
    before = parameters_to_vector(actor.parameters()).detach().clone()
    metrics = HatrpoUpdate(actor, AlgoConfig()).update(batch, torch.Generator())
    assert (metrics["accepted"], metrics["rejected"], metrics["grad_norm"]) == (0.0, 0.0, 0.0)
    assert torch.equal(before, parameters_to_vector(actor.parameters()))


def explicit_fisher(actor, weights, obs, mask):
    """Mean over states of J^T F_dist J, J the Jacobian in theta of the network output."""
    names = list(weights)
    sizes = [weights[n].numel() for n in names]
    theta = torch.cat([weights[n].reshape(-1) for n in names])

    def unflatten(t):
        return {n: c.view_as(weights[n]) for n, c in zip(names, t.split(sizes))}

    jac = jacrev(lambda t: net_output(actor, unflatten(t), obs))(theta)  # [B, K, n]
    if actor.kind == "continuous":
        inv_var = torch.exp(-2 * weights["log_std"])
        fisher = torch.einsum("bkn,k,bkm->nm", jac, inv_var, jac) / obs.shape[0]
        log_std_jac = jacrev(lambda t: unflatten(t)["log_std"])(theta)  # [K, n]
        return fisher + 2.0 * log_std_jac.T @ log_std_jac  # Fisher of log-std: 2 per dimension
    probs = distribution(actor, weights, obs, mask).probs
    logit_fisher = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]
    return torch.einsum("bkn,bkl,blm->nm", jac, logit_fisher, jac) / obs.shape[0]


def explicit_gradient(actor, weights, batch):
    def surrogate(w):
        log_prob = distribution(actor, w, batch.obs, batch.action_mask).log_prob(batch.actions)
        log_prob = log_prob.sum(-1) if actor.kind == "continuous" else log_prob
        return (torch.exp(log_prob - batch.old_log_prob) * batch.factor * batch.advantages).mean()

    g = grad(surrogate)(weights)
    return torch.cat([g[n].reshape(-1) for n in weights])


@pytest.mark.parametrize(("kind", "masked"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_step_is_the_explicit_natural_gradient_step(kind, masked, seed):
    """theta_new - theta_old = c^k sqrt(2 delta / x^T (F + l I) x) x with (F + l I) x = g, F explicit."""
    actor = make_actor(kind, seed, act=3, dtype=torch.float64)
    weights = weights_of(actor)
    batch = make_batch(actor, 10 + seed, masked, dtype=torch.float64)
    n = sum(w.numel() for w in weights.values())
    cfg = AlgoConfig(kl_threshold=0.02, cg_damping=0.1, cg_iterations=5 * n, cg_tolerance=1e-13)
    metrics = HatrpoUpdate(actor, cfg).update(batch, torch.Generator())
    assert metrics["accepted"] == 1.0

    damped = explicit_fisher(actor, weights, batch.obs, batch.action_mask) + cfg.cg_damping * torch.eye(n, dtype=torch.float64)
    g = explicit_gradient(actor, weights, batch)
    x = torch.linalg.solve(damped, g)
    step = math.sqrt(2 * cfg.kl_threshold / (x @ damped @ x)) * x
    expected = cfg.backtrack_coeff ** metrics["backtracks"] * step
    moved = parameters_to_vector(actor.parameters()).detach() - torch.cat([w.reshape(-1) for w in weights.values()])
    torch.testing.assert_close(moved, expected, rtol=1e-8, atol=1e-11)
    assert metrics["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-10)
    assert metrics["cg_residual"] <= 1e-12 * max(1.0, g.norm().item()) * 10


def hatrpo(name, *overrides):
    return config.load(name).with_overrides(QUIET + list(overrides))


@pytest.mark.parametrize(("scenario", "agents"), [("ToySplit", "2"), ("ToySplit", "4"), ("ToySplitMasked", "2")])
def test_hatrpo_solves_the_split_game(scenario, agents):
    trainer = Trainer(hatrpo("toy_split", f"env.scenario={scenario}", f"env.agent_conf={agents}"))
    trainer.train()  # ToySplitMasked raises if a masked action is ever played
    assert trainer.evaluate(40) == 1.0
    assert trainer.history[-1]["train_return"] > 0.9


def test_cli_trains_and_resumes_hatrpo(tmp_path):
    args = ["--config", "toy_split", "--algo", "hatrpo", "--log-dir", str(tmp_path), "--run-name", "cli", "--no-progress"]
    assert main(args + ["--num-env-steps", "1024", "--set", "run.eval_interval=2"]) == 0
    run = tmp_path / "cli"
    rows = read_csv(run / METRICS_FILE)
    assert len(rows) == 4 and rows[-1]["eval_return"] != ""
    diagnostics = ["actor/accepted", "actor/rejected", "actor/backtracks", "actor/kl", "actor/surrogate_improvement", "actor/cg_iterations", "actor/cg_residual"]
    assert set(rows[0]) >= set(diagnostics)
    assert all(0.0 <= float(row["actor/kl"]) <= 0.01 for row in rows)
    saved = config.load(str(run / "config.yaml"))
    assert (saved.algo.name, saved.algo.kl_threshold) == ("hatrpo", 0.01)
    assert main(["--resume", str(run), "--num-env-steps", "2048", "--no-progress"]) == 0
    assert len(read_csv(run / METRICS_FILE)) == 8


@pytest.mark.parametrize(("task", "delta", "clip"), [("Ant 4x2", 0.005, 0.2), ("HalfCheetah 2x3", 0.01, 0.2), ("Walker2d 2x3", 0.01, 0.2)])
def test_cli_picks_the_hatrpo_tuned_config(capsys, task, delta, clip):
    """HARL's HATRPO values (its value clip too), never the HAPPO-tuned config of the task."""
    scenario, conf = task.split()
    assert main(["--scenario", scenario, "--agent-conf", conf, "--algo", "hatrpo", "--print-config"]) == 0
    printed = config.Config.from_dict(yaml.safe_load(capsys.readouterr().out))
    assert (printed.algo.name, printed.algo.kl_threshold, printed.algo.clip) == ("hatrpo", delta, clip)
    assert (printed.env.scenario, printed.env.agent_conf) == (scenario, conf)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("kl_threshold", 0, "algo.kl_threshold must be > 0, got 0"),
    ("backtrack_coeff", 1.0, r"algo.backtrack_coeff must be in \(0, 1\), got 1.0"),
    ("ls_steps", 0, r"algo.ls_steps must be in \[1, 2\*\*31\), got 0"),
    ("accept_ratio", 1.5, r"algo.accept_ratio must be in \[0, 1\], got 1.5"),
])
def test_bad_hatrpo_settings_name_the_key(key, value, match):
    with pytest.raises(config.ConfigError, match=match):
        config.Config().with_overrides([f"algo.{key}={value}"])
