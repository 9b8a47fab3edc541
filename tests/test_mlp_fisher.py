"""The actors' Fisher as explicit Jacobian products (`Actor.fisher`, C++ `hapo.MlpFisher`).

References we did not write: the Hessian of the mean KL computed by
torch.autograd.functional.hessian on the actor's own forward (every layer option, both
distributions, masks), torch.linalg.solve, and the autograd double-backward path
(`algo.fisher: autograd`, `hapo.conjugate_gradient` on the KL) for the whole HATRPO step.
"""

import dataclasses
import itertools

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

import hapo
from hapo.algos import AgentBatch, HatrpoUpdate
from hapo.config import AlgoConfig, ModelConfig
from hapo.models import Actor

OBS, ACT, STATES = 5, 3, 23
LAYERNORMS = ["none", "input", "every_layer"]
OPTIONS = list(itertools.product(LAYERNORMS, ["exp", "sigmoid"], ["relu", "tanh"]))


def make_actor(kind, layernorm="every_layer", std="sigmoid", activation="tanh", seed=0, dtype=torch.float64, hidden=(6, 4)):
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden_sizes=list(hidden), layernorm=layernorm, std=std, activation=activation, output_gain=1.0)
    actor = Actor(OBS, ACT, kind, cfg).to(dtype)
    with torch.no_grad():  # move LayerNorm's affine parameters and the std off their initial values
        for name, p in actor.named_parameters():
            if "norm" in name or "std" in name:
                p.add_(0.3 * torch.randn_like(p))
    return actor


def make_states(masked, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(STATES, OBS, generator=gen, dtype=dtype)
    if not masked:
        return obs, None
    mask = torch.rand(STATES, ACT, generator=gen) > 0.4
    mask[:, 1] = True
    mask[0] = False  # a row with no available choice: uniform, and constant in the parameters
    mask[1] = torch.tensor([False, True, False])  # one choice: a point mass
    return obs, mask


class DistParams(torch.nn.Module):
    """The actor's distribution parameters as a module's forward, for torch.func.functional_call."""

    def __init__(self, actor):
        super().__init__()
        self.actor = actor

    def forward(self, obs, mask):
        return self.actor.dist_params(obs, mask)


def kl_hessian(actor, obs, mask):
    """Hessian in the flat parameters of the mean KL(pi_old || pi_theta), at theta = theta_old."""
    module = DistParams(actor)
    named = list(module.named_parameters())
    theta0 = parameters_to_vector(actor.parameters()).detach()
    old = actor.dist_params(obs, mask).detach()

    def kl_at(theta):
        pieces = theta.split([p.numel() for _, p in named])
        weights = {name: piece.view_as(p) for (name, p), piece in zip(named, pieces)}
        return actor.kl_from_params(old, functional_call(module, weights, (obs, mask), strict=True))

    return torch.autograd.functional.hessian(kl_at, theta0)


def dense(fisher, n, dtype=torch.float64):
    """The operator's matrix, one product per column."""
    return torch.stack([fisher(column) for column in torch.eye(n, dtype=dtype)], dim=1)


# Every layer option with a Gaussian (both std parametrisations) and a categorical actor.
CASES = [(*options, "continuous", False) for options in OPTIONS] + [
    (layernorm, "exp", activation, "discrete", masked)
    for layernorm, activation, masked in itertools.product(LAYERNORMS, ["relu", "tanh"], [False, True])
]


@pytest.mark.parametrize(("layernorm", "std", "activation", "kind", "masked"), CASES)
def test_fisher_equals_the_kl_hessian(layernorm, std, activation, kind, masked):
    actor = make_actor(kind, layernorm, std, activation)
    obs, mask = make_states(masked)
    n = sum(p.numel() for p in actor.parameters())
    expected = kl_hessian(actor, obs, mask)
    assert expected.abs().max() > 1e-3
    got = dense(actor.fisher(obs, mask, damping=0.0), n)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    damped = dense(actor.fisher(obs, mask, damping=0.25), n)
    torch.testing.assert_close(damped, expected + 0.25 * torch.eye(n, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [127, 128, 1001])
def test_many_rows_match_the_double_backward_product(rows, threads):
    """Batches that split into several row blocks in C++ (128 rows each), with a partial last one."""
    actor = make_actor("continuous", hidden=(32, 32))
    obs = torch.randn(rows, OBS, dtype=torch.float64, generator=torch.Generator().manual_seed(rows))
    params = actor.dist_params(obs)
    kl = actor.kl_from_params(params.detach(), params)
    v = torch.randn(sum(p.numel() for p in actor.parameters()), dtype=torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = actor.fisher(obs, damping=0.1)(v)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(got, hapo.fisher_vector_product(kl, list(actor.parameters()), v, 0.1), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(("kind", "masked"), [("continuous", False), ("discrete", True)])
def test_solve_matches_linalg_solve(kind, masked):
    actor = make_actor(kind)
    obs, mask = make_states(masked)
    n = sum(p.numel() for p in actor.parameters())
    g = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    damped = kl_hessian(actor, obs, mask) + 0.1 * torch.eye(n, dtype=torch.float64)
    x = torch.linalg.solve(damped, g)
    result = actor.fisher(obs, mask, damping=0.1).solve(g, max_iterations=10 * n, tolerance=1e-12)
    torch.testing.assert_close(result.x, x, rtol=1e-8, atol=1e-10)
    assert result.curvature == pytest.approx((x @ damped @ x).item(), rel=1e-9)
    assert result.residual_norm <= 1e-10


def test_float32_products_match_float64():
    """The paper's actor (LayerNorm everywhere, sigmoid std) at a realistic width, in float32."""
    actor64 = make_actor("continuous", hidden=(64, 64, 64))
    obs64, _ = make_states(False)
    actor32 = make_actor("continuous", hidden=(64, 64, 64), dtype=torch.float32)
    actor32.load_state_dict({k: v.float() for k, v in actor64.state_dict().items()})
    v64 = torch.randn(sum(p.numel() for p in actor64.parameters()), dtype=torch.float64)
    expected = actor64.fisher(obs64, damping=0.1)(v64)
    got = actor32.fisher(obs64.float(), damping=0.1)(v64.float())
    assert ((got.double() - expected).norm() / expected.norm()).item() < 1e-5


def hatrpo_batch(actor, masked, seed):
    obs, mask = make_states(masked, seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        old = actor.dist_params(obs, mask)
        dist = actor.distribution_from_params(old)
        actions = dist.sample() if mask is None else torch.where(mask, torch.rand(mask.shape, generator=gen), -1.0).argmax(-1)
        old_log_prob = actor.log_prob_from_params(old, actions)
    advantages = torch.randn(STATES, generator=gen, dtype=obs.dtype)
    factor = torch.exp(0.2 * torch.randn(STATES, generator=gen, dtype=obs.dtype))
    return AgentBatch(obs, actions, mask, advantages, old_log_prob, old, factor)


@pytest.mark.parametrize(("layernorm", "std", "activation", "kind", "masked"), CASES)
def test_hatrpo_step_equals_the_autograd_fisher_step(layernorm, std, activation, kind, masked):
    """Two HATRPO steps from the same actor and batch, one with each Fisher: the same parameters.

    Conjugate gradient runs 5 iterations (tolerance 0): products that differ by rounding
    (1e-16) drift apart by about 10x per iteration on these small, nearly singular Fishers,
    and a tolerance could stop the two paths one iteration apart."""
    cfg = AlgoConfig(kl_threshold=0.01, cg_iterations=5, cg_damping=0.1, cg_tolerance=0.0)
    actors = [make_actor(kind, layernorm, std, activation) for _ in range(2)]
    torch.manual_seed(3)
    batch = hatrpo_batch(actors[0], masked, seed=7)
    ours = HatrpoUpdate(actors[0], cfg).update(batch, torch.Generator())
    reference = HatrpoUpdate(actors[1], dataclasses.replace(cfg, fisher="autograd")).update(batch, torch.Generator())
    assert ours["accepted"] == reference["accepted"] == 1.0
    assert ours["backtracks"] == reference["backtracks"] and ours["cg_iterations"] == reference["cg_iterations"] == 5
    moved = [parameters_to_vector(a.parameters()) - parameters_to_vector(make_actor(kind, layernorm, std, activation).parameters()) for a in actors]
    assert moved[1].abs().max() > 1e-4
    assert ((moved[0] - moved[1]).norm() / moved[1].norm()).item() < 1e-10
    assert ours["cg_residual"] == pytest.approx(reference["cg_residual"], rel=1e-6, abs=1e-12)


def fisher_args(**changes):
    """Arguments of a valid hapo.MlpFisher (Gaussian, 2 layers, LayerNorms), with changes."""
    gen = torch.Generator().manual_seed(0)
    args = dict(
        obs=torch.randn(6, 4, generator=gen), weights=[torch.randn(5, 4, generator=gen), torch.randn(2, 5, generator=gen)],
        biases=[torch.zeros(5), torch.zeros(2)], distribution="gaussian", input_norm=(torch.ones(4), torch.zeros(4)),
        hidden_norms=[(torch.ones(5), torch.zeros(5))], std_param=torch.zeros(2), std_kind="sigmoid", std_scale=0.5,
    )
    args.update(changes)
    return args


def make_fisher(**changes):
    args = fisher_args(**changes)
    return hapo.MlpFisher(args.pop("obs"), args.pop("weights"), args.pop("biases"), **args)


def test_valid_arguments_build_an_operator():
    fisher = make_fisher()
    assert fisher.size == 2 + 8 + 20 + 5 + 10 + 2 + 10
    assert fisher(torch.ones(fisher.size)).shape == (fisher.size,)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        (dict(obs=torch.randn(6)), ValueError, r"obs must have shape \[B, obs_size\], got \(6,\)"),
        (dict(obs=torch.randn(0, 4)), ValueError, "at least one state"),
        (dict(obs=torch.randn(6, 4, dtype=torch.float16)), TypeError, "obs must have dtype torch.float32 or torch.float64"),
        (dict(obs=torch.full((6, 4), float("nan"))), ValueError, "obs"),
        (dict(weights=[]), ValueError, "at least one Linear layer"),
        (dict(biases=[torch.zeros(5)]), ValueError, r"biases must hold one tensor per weight \(2\), got 1"),
        (dict(weights=[torch.randn(5, 3), torch.randn(2, 5)]), ValueError, r"weights\[0\] must have shape \(5, 4\), got \(5, 3\)"),
        (dict(weights=[torch.randn(5, 4).double(), torch.randn(2, 5)]), TypeError, r"weights\[0\] has dtype torch.float64 but obs has torch.float32"),
        (dict(biases=[torch.zeros(5), torch.zeros(3)]), ValueError, r"biases\[1\] must have shape \(2,\)"),
        (dict(input_norm=(torch.ones(3), torch.zeros(4))), ValueError, r"input_norm\[0\] \(weight\) must have shape \(4,\)"),
        (dict(hidden_norms=[(torch.ones(5), torch.zeros(5))] * 2), ValueError, r"one \(weight, bias\) per hidden layer \(1\), got 2"),
        (dict(hidden_norms=[(torch.ones(5), torch.full((5,), float("inf")))]), ValueError, r"hidden_norms\[0\]\[1\] \(bias\)"),
        (dict(activation="gelu"), ValueError, "activation must be 'relu' or 'tanh', got 'gelu'"),
        (dict(norm_eps=0.0), ValueError, "norm_eps must be a finite number > 0, got 0"),
        (dict(distribution="beta"), ValueError, "distribution must be 'gaussian' or 'categorical', got 'beta'"),
        (dict(std_param=None), ValueError, "a gaussian distribution needs std_param"),
        (dict(std_param=torch.zeros(3)), ValueError, r"std_param must have shape \(2,\)"),
        (dict(std_kind="softplus"), ValueError, "std_kind must be 'exp' or 'sigmoid', got 'softplus'"),
        (dict(std_scale=-1.0), ValueError, "std_scale must be a finite number > 0, got -1"),
        (dict(action_mask=torch.ones(6, 2, dtype=torch.bool)), ValueError, "action_mask is for categorical distributions only"),
        (dict(distribution="categorical"), ValueError, "std_param is for gaussian distributions only"),
        (dict(distribution="categorical", std_param=None, action_mask=torch.ones(6, 2)), TypeError, "action_mask must have dtype torch.bool"),
        (dict(distribution="categorical", std_param=None, action_mask=torch.ones(6, 3, dtype=torch.bool)), ValueError, r"action_mask must have shape \(6, 2\)"),
        (dict(damping=-0.1), ValueError, "damping must be a finite number >= 0"),
    ],
)
def test_bad_arguments_name_the_value(changes, error, match):
    with pytest.raises(error, match=match):
        make_fisher(**changes)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f: f(torch.ones(3)), ValueError, "v must have 57 elements"),
        (lambda f: f(torch.ones(57, dtype=torch.float64)), TypeError, "v must have the parameters' dtype torch.float32"),
        (lambda f: f(torch.ones(57, 1)), ValueError, "v must have shape"),
        (lambda f: f(torch.full((57,), float("nan"))), ValueError, "v"),
        (lambda f: f.solve(torch.ones(4)), ValueError, "g must have 57 elements"),
        (lambda f: f.solve(torch.ones(57), max_iterations=0), ValueError, "max_iterations must be >= 1, got 0"),
        (lambda f: f.solve(torch.ones(57), tolerance=-1.0), ValueError, "tolerance must be a finite number >= 0"),
    ],
)
def test_bad_vectors_name_the_value(call, error, match):
    with pytest.raises(error, match=match):
        call(make_fisher())


def test_overflowing_network_raises_instead_of_returning_garbage():
    huge = [torch.full((5, 4), 1e30), torch.full((2, 5), 1e30)]
    fisher = make_fisher(weights=huge, input_norm=None, hidden_norms=[])
    with pytest.raises(ValueError, match="not finite"):
        fisher(torch.ones(fisher.size))


@pytest.mark.parametrize(("kind", "masked"), [("continuous", False), ("discrete", True)])
def test_row_weights_give_the_hessian_of_the_weighted_kl(kind, masked):
    """0/1 row weights (inactive agents' rows weigh 0): the Hessian of the KL averaged over the
    rows that count, i.e. the plain Hessian on those rows alone."""
    actor = make_actor(kind)
    obs, mask = make_states(masked)
    weights = (torch.arange(STATES) % 3 != 0).double()
    keep = weights.bool()
    n = sum(p.numel() for p in actor.parameters())
    expected = kl_hessian(actor, obs[keep], None if mask is None else mask[keep])
    got = dense(actor.fisher(obs, mask, damping=0.0, row_weights=weights), n)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_row_weights_must_count_some_row():
    with pytest.raises(ValueError, match="row_weights must be >= 0 with a positive sum"):
        make_fisher(row_weights=torch.zeros(6))
    with pytest.raises(ValueError, match=r"row_weights must have shape \(6,\)"):
        make_fisher(row_weights=torch.ones(5))
