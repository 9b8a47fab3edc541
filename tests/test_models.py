import math

import numpy as np
import pytest
import torch

from hapo.config import ModelConfig
from hapo.models import Actor, JointPolicy, ValueNormalizer

CFG = ModelConfig(hidden_sizes=[16, 16])


def gaussian_actor(obs=5, act=3, seed=0, cfg=CFG):
    torch.manual_seed(seed)
    actor = Actor(obs, act, "continuous", cfg)
    with torch.no_grad():
        actor.log_std.copy_(torch.linspace(-1.0, 0.5, act))
    return actor


def test_gaussian_log_prob_entropy_kl_match_closed_forms():
    actor = gaussian_actor()
    obs, actions = torch.randn(7, 5), torch.randn(7, 3)
    mean, log_std = actor.dist_params(obs).chunk(2, dim=-1)
    std = log_std.exp()
    expected = (-0.5 * ((actions - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(actor.log_prob(obs, actions), expected)
    torch.testing.assert_close(actor.entropy(obs), (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1))
    old = actor.dist_params(obs).detach()
    assert actor.kl(obs, old).item() == pytest.approx(0.0, abs=1e-7)
    shifted = old.clone()
    shifted[:, :3] += 0.3  # old mean 0.3 higher: KL = sum 0.3^2 / (2 std^2)
    torch.testing.assert_close(actor.kl(obs, shifted), (0.09 / (2 * std**2)).sum(-1).mean())


def test_kl_is_differentiable_in_the_current_parameters():
    actor = gaussian_actor()
    obs = torch.randn(4, 5)
    old = actor.dist_params(obs).detach() + 0.1
    actor.kl(obs, old).backward()
    assert actor.log_std.grad is not None and actor.log_std.grad.abs().sum() > 0


def test_categorical_with_mask():
    torch.manual_seed(0)
    actor = Actor(4, 3, "discrete", CFG)
    obs = torch.randn(6, 4)
    mask = torch.tensor([[True, True, False]] * 3 + [[False, True, True]] * 3)
    log_probs = actor.dist_params(obs, mask)
    probs = log_probs.exp()
    assert (probs[~mask] == 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    logits = actor.net(obs)
    ref = torch.where(mask, logits, torch.tensor(-torch.inf)).log_softmax(-1)
    actions = torch.tensor([0, 1, 0, 2, 1, 2])
    torch.testing.assert_close(actor.log_prob(obs, actions, mask), ref.gather(1, actions[:, None]).squeeze(1))
    entropy = -(ref.exp() * torch.where(mask, ref, torch.tensor(0.0))).sum(-1)
    torch.testing.assert_close(actor.entropy(obs, mask), entropy)
    kl = actor.kl(obs, log_probs.detach(), mask)
    assert torch.isfinite(kl) and kl.item() == pytest.approx(0.0, abs=1e-6)


def test_fused_policy_matches_each_actor_and_groups_by_shape():
    cfg = ModelConfig(hidden_sizes=[16, 8], layernorm="input")
    actors = [gaussian_actor(5, 3, seed=s, cfg=cfg) for s in range(3)] + [gaussian_actor(4, 2, seed=9, cfg=cfg)]
    for a in actors:  # non-trivial LayerNorm affine parameters
        torch.nn.init.normal_(a.net.norm.weight)
        torch.nn.init.normal_(a.net.norm.bias)
    policy = JointPolicy(actors)
    assert policy.groups == [[0, 1, 2], [3]]
    obs = [torch.randn(11, a.obs_size) for a in actors]
    means = policy.act(obs, deterministic=True)
    for a, o, m in zip(actors, obs, means):
        torch.testing.assert_close(m, a.distribution(o).mean, atol=1e-5, rtol=1e-5)


def test_fused_samples_have_the_actor_distribution():
    actor = gaussian_actor(2, 3)
    policy = JointPolicy([actor, actor])
    obs = torch.randn(1, 2).expand(20000, 2)
    samples = policy.act([obs, obs], generator=torch.Generator().manual_seed(0))[0]
    dist = actor.distribution(obs[:1])
    torch.testing.assert_close(samples.mean(0), dist.mean[0], atol=0.03, rtol=0)
    torch.testing.assert_close(samples.std(0), dist.stddev[0], atol=0.03, rtol=0)


def test_fused_categorical_samples_follow_softmax_and_respect_masks():
    torch.manual_seed(1)
    actor = Actor(2, 4, "discrete", ModelConfig(hidden_sizes=[8], output_gain=1.0))
    obs = torch.randn(1, 2).expand(40000, 2)
    mask = torch.tensor([True, True, False, True]).expand(40000, 4)
    actions = JointPolicy([actor]).act([obs], generator=torch.Generator().manual_seed(0), action_masks=[mask])[0]
    assert actions.dtype == torch.int64 and not (actions == 2).any()
    freq = torch.bincount(actions, minlength=4).float() / len(actions)
    torch.testing.assert_close(freq, actor.dist_params(obs[:1], mask[:1]).exp()[0], atol=0.01, rtol=0)


def test_policy_snapshot_and_refresh():
    actor = gaussian_actor(2, 1)
    policy = JointPolicy([actor])
    obs = [torch.randn(3, 2)]
    before = policy.act(obs, deterministic=True)[0]
    with torch.no_grad():
        actor.net.layers[-1].bias.add_(1.0)
    torch.testing.assert_close(policy.act(obs, deterministic=True)[0], before)
    policy.refresh()
    torch.testing.assert_close(policy.act(obs, deterministic=True)[0], before + 1.0)


@pytest.mark.parametrize(
    "obs,match",
    [
        ([torch.zeros(3, 2)] * 2, "one array per agent \\(1\\), got 2"),
        ([torch.zeros(3, 5)], r"obs\[0\] must have shape \[B, 2\]"),
        ([np.zeros((3, 2))], r"obs\[0\] must have dtype torch.float32, got torch.float64"),
    ],
)
def test_policy_rejects_bad_observations(obs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        JointPolicy([gaussian_actor(2, 1)]).act(obs)


def test_value_normalizer_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (5, 100, 37)]
    norm = ValueNormalizer()
    for b in batches:
        norm.update(torch.from_numpy(b).float())
    everything = np.concatenate([b.astype(np.float32) for b in batches])
    assert norm.mean.item() == pytest.approx(everything.mean(), rel=1e-6)
    assert norm.var.item() == pytest.approx(everything.var(), rel=1e-6)
    x = torch.randn(9)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)
