import copy

import pytest
import torch
from torch.distributions import Categorical, Normal

from hapo.algos import ActorUpdate, AgentData, HappoUpdate, sequential_update
from hapo.config import AlgoConfig, ModelConfig
from hapo.models import Actor


class Recording(ActorUpdate):
    """HAPPO, recording the factor each agent was given."""

    def __init__(self, actor, cfg, log):
        super().__init__(actor, cfg)
        self.inner, self.log = HappoUpdate(actor, cfg), log

    def update(self, batch, generator):
        self.log.append((self.actor, batch.factor.clone()))
        return self.inner.update(batch, generator)


def reference_log_prob(actor, state_dict, obs, actions):
    """log pi(a|o) from torch.distributions on a copy of the actor holding `state_dict`."""
    net = copy.deepcopy(actor)
    net.load_state_dict(state_dict)
    with torch.no_grad():
        out = net.net(obs)
        if actor.kind == "continuous":
            return Normal(out, net.log_std.exp()).log_prob(actions).sum(-1)
        return Categorical(logits=out).log_prob(actions)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_factor_is_the_product_of_updated_agents_ratios(kind):
    torch.manual_seed(0)
    sizes = [(4, 2), (3, 1), (5, 3), (4, 2)]
    cfg = AlgoConfig(ppo_epochs=3, num_minibatches=2, actor_lr=1e-2, clip=0.3)
    actors = [Actor(o, a, kind, ModelConfig(hidden_sizes=[8], output_gain=1.0)) for o, a in sizes]
    B = 64
    data = []
    for actor in actors:
        obs = torch.randn(B, actor.obs_size)
        with torch.no_grad():
            actions = actor.distribution(obs).sample()
        data.append(AgentData(obs, actions, None))
    advantages = torch.randn(B)
    before = [copy.deepcopy(a.state_dict()) for a in actors]
    log: list = []
    updaters = [Recording(a, cfg, log) for a in actors]
    order = [2, 0, 3, 1]
    result = sequential_update(actors, updaters, data, advantages, order, torch.Generator().manual_seed(0))

    assert [actors.index(a) for a, _ in log] == order
    expected = torch.ones(B)
    for position, i in enumerate(order):
        given = log[position][1]
        torch.testing.assert_close(given, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result.factors[i], given)
        new = reference_log_prob(actors[i], actors[i].state_dict(), data[i].obs, data[i].actions)
        old = reference_log_prob(actors[i], before[i], data[i].obs, data[i].actions)
        expected = expected * torch.exp(new - old)
    torch.testing.assert_close(result.final_factor, expected, rtol=1e-5, atol=1e-6)
    # the updates moved the policies, so the check above is not trivially all ones
    assert (expected - 1).abs().max() > 0.05
    assert set(result.metrics[0]) == {"policy_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm"}


def test_happo_step_follows_the_factor_weighted_gradient():
    """One full-batch Adam step changes the actor along the gradient of E[r * M * A] at r = 1."""
    torch.manual_seed(3)
    actor = Actor(3, 2, "continuous", ModelConfig(hidden_sizes=[8]))
    obs, actions = torch.randn(32, 3), torch.randn(32, 2)
    advantages, factor = torch.randn(32), torch.rand(32) * 2
    with torch.no_grad():
        params = actor.dist_params(obs)
        old_log_prob = actor.log_prob_from_params(params, actions)
    surrogate = (torch.exp(actor.log_prob(obs, actions) - old_log_prob) * factor * advantages).mean()
    grad = torch.autograd.grad(surrogate, actor.log_std)[0]
    before = actor.log_std.detach().clone()
    from hapo.algos import AgentBatch

    batch = AgentBatch(obs, actions, None, advantages, old_log_prob, params, factor)
    HappoUpdate(actor, AlgoConfig(ppo_epochs=1, actor_lr=1e-3)).update(batch, torch.Generator())
    # Adam's first step is lr * sign(grad) per coordinate
    torch.testing.assert_close(actor.log_std.detach() - before, 1e-3 * grad.sign(), rtol=1e-3, atol=1e-7)
