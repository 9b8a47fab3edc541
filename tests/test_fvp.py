"""Fisher-vector products and conjugate gradient against explicit matrices.

The references: a Fisher built from autograd Jacobians of the distribution parameters
and the distribution's own Fisher in those parameters, the Hessian of the mean KL from
torch.autograd.functional.hessian, and torch.linalg.solve.
"""

import threading

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Normal, kl_divergence
from torch.func import functional_call, jacrev
from torch.nn.utils import parameters_to_vector

import hapo

OBS, HIDDEN, ACT, STATES = 4, 6, 3, 11


class GaussianPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, ACT))
        self.log_std = nn.Parameter(0.3 * torch.randn(ACT))

    def distribution(self, obs):
        return Normal(self.net(obs), self.log_std.exp().expand(obs.shape[0], ACT))


class CategoricalPolicy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, ACT))

    def distribution(self, obs):
        return Categorical(logits=self.net(obs))


def detached(dist):
    if isinstance(dist, Normal):
        return Normal(dist.loc.detach(), dist.scale.detach())
    return Categorical(logits=dist.logits.detach())


def mean_kl(old, new):
    kl = kl_divergence(old, new)
    return (kl.sum(-1) if isinstance(new, Normal) else kl).mean()


def make(policy_cls, seed, dtype=torch.float64):
    torch.manual_seed(seed)
    policy = policy_cls().to(dtype)
    obs = torch.randn(STATES, OBS, dtype=dtype)
    return policy, obs


def current_kl(policy, obs):
    """Mean KL from the current (detached) policy to itself, with its graph."""
    dist = policy.distribution(obs)
    return mean_kl(detached(dist), dist)


def at_flat(policy, theta):
    """The policy's parameters as a dict of views into the flat vector theta."""
    out, start = {}, 0
    for name, p in policy.named_parameters():
        out[name] = theta[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


def explicit_fisher(policy, obs):
    """Mean over states of J_s^T F_dist J_s, J_s the Jacobian of the distribution parameters."""
    theta0 = parameters_to_vector(policy.parameters()).detach()
    if isinstance(policy, GaussianPolicy):
        mean_jac = jacrev(lambda t: functional_call(policy.net, _net_params(policy, t), (obs,)))(
            theta0
        )  # [S, A, n]
        log_std_jac = jacrev(lambda t: at_flat(policy, t)["log_std"])(theta0)  # [A, n]
        inv_var = torch.exp(-2 * policy.log_std.detach())
        fisher = torch.einsum("san,a,sam->nm", mean_jac, inv_var, mean_jac) / obs.shape[0]
        return fisher + 2.0 * log_std_jac.T @ log_std_jac
    logits_jac = jacrev(lambda t: functional_call(policy.net, _net_params(policy, t), (obs,)))(
        theta0
    )  # [S, K, n]
    probs = torch.softmax(policy.net(obs).detach(), -1)
    logit_fisher = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]
    return torch.einsum("skn,skl,slm->nm", logits_jac, logit_fisher, logits_jac) / obs.shape[0]


def _net_params(policy, theta):
    return {k[len("net.") :]: v for k, v in at_flat(policy, theta).items() if k.startswith("net.")}


def kl_hessian(policy, obs):
    """Hessian in theta of the mean KL from the policy at theta0 to the policy at theta."""
    theta0 = parameters_to_vector(policy.parameters()).detach()
    old = detached(policy.distribution(obs))

    def kl_at(theta):
        params = at_flat(policy, theta)
        net = functional_call(policy.net, _net_params(policy, theta), (obs,))
        if isinstance(policy, GaussianPolicy):
            new = Normal(net, params["log_std"].exp().expand(obs.shape[0], ACT))
        else:
            new = Categorical(logits=net)
        return mean_kl(old, new)

    return torch.autograd.functional.hessian(kl_at, theta0)


@pytest.mark.parametrize("policy_cls", [GaussianPolicy, CategoricalPolicy])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fvp_equals_explicit_fisher_and_kl_hessian(policy_cls, seed):
    policy, obs = make(policy_cls, seed)
    fisher = explicit_fisher(policy, obs)
    hessian = kl_hessian(policy, obs)
    torch.testing.assert_close(fisher, hessian, rtol=1e-10, atol=1e-12)
    params = list(policy.parameters())
    for damping in (0.0, 0.1):
        v = torch.randn(fisher.shape[0], dtype=torch.float64)
        fv = hapo.fisher_vector_product(current_kl(policy, obs), params, v, damping)
        torch.testing.assert_close(fv, fisher @ v + damping * v, rtol=1e-10, atol=1e-12)


def test_fvp_float32_matches_float64_fisher():
    policy, obs = make(GaussianPolicy, 3)
    fisher = explicit_fisher(policy, obs)
    v = torch.randn(fisher.shape[0], dtype=torch.float64)
    policy32 = policy.float()
    fv = hapo.fisher_vector_product(
        current_kl(policy32, obs.float()), list(policy32.parameters()), v.float(), 0.1
    )
    assert fv.dtype == torch.float32
    torch.testing.assert_close(fv.double(), fisher @ v + 0.1 * v, rtol=1e-4, atol=1e-5)


def quadratic_kl(A, seed):
    """kl = 0.5 (theta - theta0)^T A (theta - theta0): its Fisher (Hessian) is A exactly.

    theta is split over tensors of several shapes to exercise the flat layout.
    """
    gen = torch.Generator().manual_seed(seed)
    n = A.shape[0]
    shapes = [(3,), (2, 3), (n - 9,)]
    params = [torch.randn(s, generator=gen, dtype=A.dtype).requires_grad_() for s in shapes]
    theta0 = torch.randn(n, generator=gen, dtype=A.dtype)
    d = torch.cat([p.reshape(-1) for p in params]) - theta0
    return 0.5 * d @ A @ d, params


def random_spd(n, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen, dtype=dtype)
    return m @ m.T / n + 0.3 * torch.eye(n, dtype=dtype)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_cg_matches_linalg_solve(seed, damping):
    n = 12
    A = random_spd(n, seed)
    kl, params = quadratic_kl(A, seed)
    g = torch.randn(n, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
    result = hapo.conjugate_gradient(
        kl, params, g, damping=damping, max_iterations=3 * n, tolerance=1e-12
    )
    damped = A + damping * torch.eye(n, dtype=torch.float64)
    expected = torch.linalg.solve(damped, g)
    torch.testing.assert_close(result.x, expected, rtol=1e-9, atol=1e-11)
    assert 1 <= result.iterations <= 3 * n
    assert result.residual_norm == pytest.approx(torch.linalg.norm(g - damped @ result.x).item())
    assert result.residual_norm <= 1e-10
    assert result.curvature == pytest.approx((result.x @ damped @ result.x).item(), rel=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cg_after_k_iterations_is_the_krylov_minimiser(k):
    """x_k minimises the A-norm error over span{g, A g, ..., A^(k-1) g}."""
    n = 12
    A = random_spd(n, 7)
    kl, params = quadratic_kl(A, 7)
    g = torch.randn(n, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    result = hapo.conjugate_gradient(kl, params, g, damping=0.1, max_iterations=k, tolerance=0.0)
    damped = A + 0.1 * torch.eye(n, dtype=torch.float64)
    krylov = torch.stack([torch.linalg.matrix_power(damped, i) @ g for i in range(k)], dim=1)
    coeffs = torch.linalg.solve(krylov.T @ damped @ krylov, krylov.T @ g)
    assert result.iterations == k
    torch.testing.assert_close(result.x, krylov @ coeffs, rtol=1e-9, atol=1e-11)


def test_cg_stops_at_tolerance():
    n = 12
    A = random_spd(n, 9)
    kl, params = quadratic_kl(A, 9)
    g = torch.randn(n, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    tolerance = 0.05 * torch.linalg.norm(g).item()
    result = hapo.conjugate_gradient(kl, params, g, max_iterations=50, tolerance=tolerance)
    assert 2 <= result.iterations < n
    assert result.residual_norm <= tolerance * (1 + 1e-9)
    shorter = hapo.conjugate_gradient(
        kl, params, g, max_iterations=result.iterations - 1, tolerance=0.0
    )
    assert shorter.residual_norm > tolerance


def test_cg_on_gaussian_policy_float32_matches_float64_solve():
    policy, obs = make(GaussianPolicy, 4)
    fisher = explicit_fisher(policy, obs)
    n = fisher.shape[0]
    g = torch.randn(n, dtype=torch.float64)
    policy32 = policy.float()
    result = hapo.conjugate_gradient(
        current_kl(policy32, obs.float()),
        policy32.parameters(),
        g.float(),
        damping=0.1,
        max_iterations=n,
        tolerance=1e-6,
    )
    expected = torch.linalg.solve(fisher + 0.1 * torch.eye(n, dtype=torch.float64), g)
    assert result.x.dtype == torch.float32
    torch.testing.assert_close(result.x.double(), expected, rtol=1e-3, atol=1e-3)


def test_cg_of_zero_rhs_is_zero():
    policy, obs = make(CategoricalPolicy, 5)
    params = list(policy.parameters())
    g = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    result = hapo.conjugate_gradient(current_kl(policy, obs), params, g, tolerance=0.0)
    assert result.iterations == 0
    assert torch.equal(result.x, g)
    assert result.residual_norm == 0.0 and result.curvature == 0.0


def test_parameter_the_kl_ignores_has_zero_fisher_rows():
    policy, obs = make(GaussianPolicy, 6)
    unused = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    params = list(policy.parameters())
    n = sum(p.numel() for p in params)
    v = torch.randn(n + 4, dtype=torch.float64)
    with_unused = hapo.fisher_vector_product(current_kl(policy, obs), params + [unused], v, 0.2)
    without = hapo.fisher_vector_product(current_kl(policy, obs), params, v[:n], 0.2)
    torch.testing.assert_close(with_unused[:n], without, rtol=0, atol=0)
    torch.testing.assert_close(with_unused[n:], 0.2 * v[n:], rtol=0, atol=0)


def test_strided_vector_gives_the_same_product():
    policy, obs = make(CategoricalPolicy, 9)
    params = list(policy.parameters())
    wide = torch.randn(sum(p.numel() for p in params), 2, dtype=torch.float64)
    kl = current_kl(policy, obs)
    strided = hapo.fisher_vector_product(kl, params, wide[:, 0], 0.1)
    packed = hapo.fisher_vector_product(kl, params, wide[:, 0].contiguous(), 0.1)
    torch.testing.assert_close(strided, packed, rtol=0, atol=0)


def test_kl_with_constant_gradient_has_zero_fisher():
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    kl = (w * torch.arange(5.0, dtype=torch.float64)).sum()
    v = torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(hapo.fisher_vector_product(kl, [w], v, 0.3), 0.3 * v)


def test_no_grad_context_gives_the_same_product_and_leaves_grads_alone():
    policy, obs = make(GaussianPolicy, 7)
    params = list(policy.parameters())
    v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64)
    kl = current_kl(policy, obs)
    outside = hapo.fisher_vector_product(kl, params, v, 0.1)
    with torch.no_grad():
        inside = hapo.fisher_vector_product(kl, params, v, 0.1)
    torch.testing.assert_close(inside, outside, rtol=0, atol=0)
    assert all(p.grad is None for p in params)
    kl.backward()  # the caller's graph is retained
    assert all(p.grad is not None for p in params)


class PythonSquare(torch.autograd.Function):
    """x^2 with a backward written in Python (differentiable, for double backward)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


def test_python_autograd_function_in_graph_runs_with_gil_released():
    """The autograd engine takes the GIL for Python nodes; the call must not deadlock."""
    A = random_spd(12, 11)
    kl_plain, params = quadratic_kl(A, 11)
    theta = torch.cat([p.reshape(-1) for p in params])
    kl = PythonSquare.apply(theta).sum() + kl_plain  # Hessian: A + 2 I
    v = torch.randn(12, dtype=torch.float64)
    outcome = {}

    def run():
        outcome["fv"] = hapo.fisher_vector_product(kl, params, v, 0.0)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "fisher_vector_product deadlocked on a Python autograd node"
    torch.testing.assert_close(outcome["fv"], (A + 2 * torch.eye(12, dtype=A.dtype)) @ v)


def test_non_finite_product_raises_value_error():
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    kl = torch.sqrt((theta * theta).sum())  # finite value, nan derivatives at 0
    with pytest.raises(ValueError, match="Fisher-vector product is not finite"):
        hapo.fisher_vector_product(kl, [theta], torch.ones(3, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="not finite"):
        hapo.conjugate_gradient(kl, [theta], torch.ones(3, dtype=torch.float64))


def test_freed_graph_raises_value_error():
    policy, obs = make(GaussianPolicy, 8)
    params = list(policy.parameters())
    kl = current_kl(policy, obs)
    torch.autograd.grad(kl, params)  # frees the graph's saved tensors
    v = torch.ones(sum(p.numel() for p in params), dtype=torch.float64)
    with pytest.raises(ValueError, match="cannot differentiate kl's graph: Trying to backward"):
        hapo.fisher_vector_product(kl, params, v, 0.1)


def test_indefinite_hessian_without_damping_raises_value_error():
    theta = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    kl = theta[0] * theta[1]  # Hessian [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="not positive definite"):
        hapo.conjugate_gradient(
            kl, [theta], torch.tensor([1.0, -1.0], dtype=torch.float64), damping=0.0
        )


def _bad_inputs():
    """(name, build kwargs from a valid (kl, params, v), exception, message regex)."""
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def valid():
        return {"kl": (w.sum(0) * b).pow(2).sum(), "params": [w, b], "v": torch.ones(9).double()}

    def replace(**changes):
        return lambda: {**valid(), **changes}

    def frozen():
        return {**valid(), "params": [w, b.detach()]}

    nan = torch.full((9,), float("nan"), dtype=torch.float64)
    leaf = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    b32 = b.float().detach().requires_grad_()

    return [
        ("v too short", replace(v=torch.ones(8).double()), ValueError, "9 elements.*got 8"),
        ("v 2-D", replace(v=torch.ones(3, 3).double()), ValueError, r"v must have shape.*\(3, 3\)"),
        ("v int", replace(v=torch.ones(9, dtype=torch.int64)), TypeError, "v must have"),
        ("v float32", replace(v=torch.ones(9)), TypeError, "parameters' dtype torch.float64"),
        ("v nan", replace(v=nan), ValueError, "v must be finite"),
        ("v meta", replace(v=torch.ones(9, device="meta").double()), ValueError, "device meta"),
        ("kl vector", lambda: {**valid(), "kl": (w.sum(0) * b)}, ValueError, "scalar"),
        ("kl detached", lambda: {**valid(), "kl": valid()["kl"].detach()}, ValueError, "grad_fn"),
        ("kl leaf", replace(kl=leaf), ValueError, "grad_fn"),
        ("kl int", replace(kl=torch.tensor(1)), TypeError, "kl must have dtype"),
        ("kl inf", lambda: {**valid(), "kl": valid()["kl"] * float("inf")}, ValueError, "finite"),
        ("params empty", replace(params=[]), ValueError, "at least one tensor"),
        ("params one tensor", replace(params=w), TypeError, "single Tensor"),
        ("params not tensors", replace(params=[w, 3]), TypeError, r"params\[1\].*int"),
        ("params frozen", frozen, ValueError, r"params\[1\] does not require grad"),
        ("params twice", replace(params=[w, b, b]), ValueError, r"params\[2\] appears twice"),
        ("params mixed dtype", replace(params=[w, b32]), TypeError, r"params\[1\] has dtype"),
        ("params int", replace(params=[w.long()]), TypeError, r"params\[0\] must have dtype"),
        ("damping negative", replace(damping=-0.1), ValueError, "damping must be.*-0.1"),
        ("damping nan", replace(damping=float("nan")), ValueError, "damping must be"),
    ]


@pytest.mark.parametrize(
    "build,error,match", [case[1:] for case in _bad_inputs()], ids=[c[0] for c in _bad_inputs()]
)
def test_bad_inputs_raise_clear_errors(build, error, match):
    kwargs = {"damping": 0.1, **build()}
    with pytest.raises(error, match=match):
        hapo.fisher_vector_product(**kwargs)
    g = kwargs.pop("v")
    with pytest.raises(error, match=match.replace("v must", "g must")):
        hapo.conjugate_gradient(g=g, **kwargs)


@pytest.mark.parametrize(
    "option,value,match",
    [
        ("max_iterations", 0, "max_iterations must be >= 1, got 0"),
        ("tolerance", -1e-3, "tolerance must be a finite number >= 0"),
        ("tolerance", float("inf"), "tolerance must be a finite number >= 0"),
    ],
)
def test_bad_cg_options_raise_value_error(option, value, match):
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=match):
        hapo.conjugate_gradient((w * w).sum(), [w], torch.ones(4).double(), **{option: value})
