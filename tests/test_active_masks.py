"""Inactive agents (SMAX's dead units) are left out of the actor losses: an update on a batch
whose inactive rows hold arbitrary data equals the update on the active rows alone."""

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from hapo.algos import AgentBatch, HatrpoUpdate
from hapo.algos.haa2c import Haa2cUpdate
from hapo.algos.happo import HappoUpdate
from hapo.config import AlgoConfig, ModelConfig
from hapo.models import Actor

ROWS = 48


def make_actor(kind):
    torch.manual_seed(0)
    return Actor(4, 3, kind, ModelConfig(hidden_sizes=[8], layernorm="every_layer")).double()


def make_batch(actor):
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(ROWS, 4, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        old = actor.dist_params(obs)
        actions = actor.distribution_from_params(old).sample()
        old_log_prob = actor.log_prob_from_params(old, actions)
    advantages = torch.randn(ROWS, generator=gen, dtype=torch.float64)
    factor = torch.exp(0.2 * torch.randn(ROWS, generator=gen, dtype=torch.float64))
    active = (torch.arange(ROWS) % 4 != 0).double()
    # Whatever the inactive rows hold must not matter: make it loud.
    advantages = torch.where(active.bool(), advantages, 100.0)
    return AgentBatch(obs, actions, None, advantages, old_log_prob, old, factor, active)


UPDATES = {
    "happo": lambda actor: HappoUpdate(actor, AlgoConfig(ppo_epochs=3, num_minibatches=1, entropy_coef=0.01)),
    "haa2c": lambda actor: Haa2cUpdate(actor, AlgoConfig(a2c_epochs=3, num_minibatches=1, entropy_coef=0.01)),
    "hatrpo": lambda actor: HatrpoUpdate(actor, AlgoConfig(cg_tolerance=0.0, cg_iterations=5)),
    "hatrpo_autograd": lambda actor: HatrpoUpdate(actor, AlgoConfig(cg_tolerance=0.0, cg_iterations=5, fisher="autograd")),
}


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
@pytest.mark.parametrize("algo", list(UPDATES))
def test_an_update_ignores_the_inactive_rows(algo, kind):
    full, alone = make_actor(kind), make_actor(kind)
    batch = make_batch(full)
    keep = batch.active.bool()
    active_only = batch.rows(keep)
    active_only.active = None
    before = parameters_to_vector(full.parameters()).detach().clone()
    metrics = UPDATES[algo](full).update(batch, torch.Generator().manual_seed(2))
    reference = UPDATES[algo](alone).update(active_only, torch.Generator().manual_seed(2))
    moved = parameters_to_vector(full.parameters()).detach() - before
    expected = parameters_to_vector(alone.parameters()).detach() - before
    assert expected.abs().max() > 1e-4
    assert ((moved - expected).norm() / expected.norm()).item() < 1e-9
    for key in ("policy_loss", "entropy"):
        assert metrics[key] == pytest.approx(reference[key], rel=1e-9, abs=1e-12)
