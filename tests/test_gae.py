import numpy as np
import pytest
import torch

import hapo


def numpy_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Per-step reverse loop, the obviously correct reference."""
    T, B = rewards.shape
    advantages = np.zeros((T, B), dtype=np.float64)
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            if terminated[t, b]:
                delta = rewards[t, b] - values[t, b]
                running = delta
            elif truncated[t, b]:
                delta = rewards[t, b] + gamma * next_values[t, b] - values[t, b]
                running = delta
            else:
                delta = rewards[t, b] + gamma * next_values[t, b] - values[t, b]
                running = delta + gamma * lam * running
            advantages[t, b] = running
    return advantages, advantages + values


def random_batch(T, B, seed, p_term=0.05, p_trunc=0.05):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, B)).astype(np.float32)
    values = rng.normal(size=(T, B)).astype(np.float32)
    next_values = rng.normal(size=(T, B)).astype(np.float32)
    terminated = rng.random((T, B)) < p_term
    truncated = (rng.random((T, B)) < p_trunc) & ~terminated
    return rewards, values, next_values, terminated, truncated


def run_both(batch, gamma, lam):
    ours = hapo.gae(*(torch.from_numpy(x) for x in batch), gamma, lam)
    ref = numpy_gae(*batch, gamma, lam)
    return [t.numpy() for t in ours], ref


@pytest.mark.parametrize("T,B", [(1, 1), (1, 7), (50, 1), (200, 16), (333, 5)])
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.0, 0.95), (1.0, 1.0), (1.0, 0.0), (0.9, 0.0)])
def test_matches_numpy_loop(T, B, gamma, lam):
    batch = random_batch(T, B, seed=T * 1000 + B)
    (adv, ret), (ref_adv, ref_ret) = run_both(batch, gamma, lam)
    scale = max(1.0, np.abs(ref_adv).max())
    np.testing.assert_allclose(adv, ref_adv, rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(ret, ref_ret, rtol=0, atol=2e-5 * scale)


def test_termination_does_not_bootstrap_and_truncation_does():
    T, B = 6, 3
    rewards = np.ones((T, B), np.float32)
    values = np.zeros((T, B), np.float32)
    next_values = np.full((T, B), 10.0, np.float32)
    terminated = np.zeros((T, B), bool)
    truncated = np.zeros((T, B), bool)
    terminated[2, 0] = True  # episode ends in mid-batch by termination
    truncated[2, 1] = True  # ... and by truncation
    batch = (rewards, values, next_values, terminated, truncated)
    (adv, _), (ref_adv, _) = run_both(batch, 0.5, 1.0)
    np.testing.assert_allclose(adv, ref_adv, atol=1e-6)
    assert adv[2, 0] == pytest.approx(1.0)  # r only
    assert adv[2, 1] == pytest.approx(1.0 + 0.5 * 10.0)  # r + gamma * V(final obs)
    # the step before the end carries the terminal step's advantage, not V(next)
    assert adv[1, 0] == pytest.approx((1.0 + 0.5 * 10.0) + 0.5 * 1.0 * 1.0)


def test_uint8_flags_equal_bool_flags():
    batch = random_batch(40, 4, seed=1)
    as_bool = hapo.gae(*(torch.from_numpy(x) for x in batch), 0.99, 0.95)
    as_u8 = hapo.gae(
        *(torch.from_numpy(x) for x in batch[:3]),
        torch.from_numpy(batch[3].astype(np.uint8)),
        torch.from_numpy(batch[4].astype(np.uint8)),
        0.99,
        0.95,
    )
    for a, b in zip(as_bool, as_u8):
        assert torch.equal(a, b)


def tensors(T=4, B=3):
    f = torch.zeros(T, B)
    b = torch.zeros(T, B, dtype=torch.bool)
    return dict(rewards=f, values=f.clone(), next_values=f.clone(), terminated=b, truncated=b.clone())


@pytest.mark.parametrize(
    "name,value,error,match",
    [
        ("rewards", torch.zeros(4, 3, dtype=torch.float64), TypeError, "rewards must have dtype torch.float32, got torch.float64"),
        ("values", torch.zeros(4, 2), ValueError, r"values must have shape \(4, 3\), got \(4, 2\)"),
        ("rewards", torch.zeros(12), ValueError, r"rewards must have shape \[T, B\], got \(12,\)"),
        ("next_values", torch.zeros(3, 4).t(), ValueError, "next_values must be contiguous"),
        ("terminated", torch.zeros(4, 3), TypeError, "terminated must have dtype torch.bool or torch.uint8"),
        ("truncated", torch.full((4, 3), 2, dtype=torch.uint8), ValueError, "truncated given as uint8 must hold only 0 or 1"),
        ("values", torch.zeros(4, 3, device="meta"), ValueError, "values must be on the CPU, got device meta"),
        ("rewards", np.zeros((4, 3), np.float32), TypeError, None),
    ],
)
def test_bad_tensors_are_named(name, value, error, match):
    args = tensors()
    args[name] = value
    with pytest.raises(error, match=match):
        hapo.gae(**args, gamma=0.9, lam=0.9)


@pytest.mark.parametrize("gamma,lam,bad", [(-0.1, 0.5, "gamma"), (1.01, 0.5, "gamma"), (0.5, 2.0, "lam"), (float("nan"), 0.5, "gamma")])
def test_gamma_lam_outside_unit_interval(gamma, lam, bad):
    with pytest.raises(ValueError, match=f"{bad} must be in \\[0, 1\\]"):
        hapo.gae(**tensors(), gamma=gamma, lam=lam)
