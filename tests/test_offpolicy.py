"""The off-policy family: the replay buffer and its n-step returns against plain NumPy loops."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from hapo.replay import ReplayBuffer, n_step_returns

GAMMA = 0.9


# -- the replay buffer -------------------------------------------------------------------------
def reference_n_step(rewards, ended, gamma):
    """The n-step return of each window [n, B] by an explicit loop."""
    n, batch = rewards.shape
    returns, steps = np.zeros(batch), np.zeros(batch, np.int64)
    for b in range(batch):
        for k in range(n):
            returns[b] += gamma**k * rewards[k, b]
            steps[b] += 1
            if ended[k, b]:
                break
    return returns, steps


def test_n_step_returns_stop_after_the_first_ended_step():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(6, 500)).astype(np.float32)
    ended = rng.random((6, 500)) < 0.2
    returns, steps = n_step_returns(torch.from_numpy(rewards), torch.from_numpy(ended), GAMMA)
    expected_returns, expected_steps = reference_n_step(rewards.astype(np.float64), ended, GAMMA)
    assert np.array_equal(steps.numpy(), expected_steps)
    assert set(expected_steps) == set(range(1, 7))  # windows of every length were tried
    np.testing.assert_allclose(returns.numpy(), expected_returns, rtol=1e-6, atol=1e-6)


class Stream:
    """T vector steps of N envs with random episode ends, kept in full (chronologically) and
    written to a ReplayBuffer. state[..., 0] of each transition is its id: step * N + env."""

    def __init__(self, steps, num_envs, capacity, seed=0):
        rng = np.random.default_rng(seed)
        self.T, self.N = steps, num_envs
        self.obs_sizes, self.action_sizes, self.state_size = (3, 2), (1, 2), 4
        self.state = rng.normal(size=(steps, num_envs, 4)).astype(np.float32)
        self.state[..., 0] = np.arange(steps * num_envs).reshape(steps, num_envs)
        self.next_state = rng.normal(size=(steps, num_envs, 4)).astype(np.float32)
        self.obs = [rng.normal(size=(steps, num_envs, k)).astype(np.float32) for k in self.obs_sizes]
        self.next_obs = [rng.normal(size=(steps, num_envs, k)).astype(np.float32) for k in self.obs_sizes]
        self.actions = [rng.uniform(-1, 1, size=(steps, num_envs, k)).astype(np.float32) for k in self.action_sizes]
        self.rewards = rng.normal(size=(steps, num_envs)).astype(np.float32)
        ends = rng.random((steps, num_envs))
        self.terminated = ends < 0.08
        self.truncated = (ends >= 0.08) & (ends < 0.16)
        self.buffer = ReplayBuffer(self.obs_sizes, self.action_sizes, self.state_size, num_envs, capacity)
        for t in range(steps):
            self.buffer.add(
                [o[t] for o in self.obs], self.state[t], [a[t] for a in self.actions], self.rewards[t],
                self.terminated[t], self.truncated[t], [o[t] for o in self.next_obs], self.next_state[t],
            )

    def reference(self, transition_id, n_step, gamma):
        """(returns, discount, next_state, next_obs) of one transition by walking its env's steps."""
        step, env = divmod(int(transition_id), self.N)
        total, k = 0.0, 0
        while True:
            t = step + k
            total += gamma**k * float(self.rewards[t, env])
            k += 1
            if self.terminated[t, env] or self.truncated[t, env] or t == self.T - 1 or k == n_step:
                break
        discount = 0.0 if self.terminated[t, env] else gamma**k
        return total, discount, self.next_state[t, env], [o[t, env] for o in self.next_obs], k


@pytest.mark.parametrize(("steps", "capacity"), [(30, 50), (137, 40)], ids=["filling", "wrapped"])
@pytest.mark.parametrize("n_step", [1, 5])
def test_samples_hold_n_step_returns_that_stop_at_episode_ends(steps, capacity, n_step):
    """Terminated: no bootstrap; truncated: bootstrap from the final observation; the latest
    step of an env: bootstrap from its next observation (its next step is not collected yet)."""
    stream = Stream(steps, num_envs=3, capacity=capacity)
    sample = stream.buffer.sample(4000, n_step, GAMMA, torch.Generator().manual_seed(1))
    ids = sample.state[:, 0].numpy().astype(np.int64)
    oldest = max(0, steps - capacity) * stream.N
    assert set(ids) == set(range(oldest, steps * stream.N))  # every held transition, no overwritten one
    lengths = set()
    for b, transition in enumerate(ids):
        step, env = divmod(int(transition), stream.N)
        returns, discount, next_state, next_obs, length = stream.reference(transition, n_step, GAMMA)
        lengths.add(length)
        assert sample.returns[b].item() == pytest.approx(returns, rel=1e-6, abs=1e-6)
        assert sample.discount[b].item() == pytest.approx(discount, rel=1e-6)
        assert np.array_equal(sample.state[b].numpy(), stream.state[step, env])
        assert np.array_equal(sample.next_state[b].numpy(), next_state)
        for i in range(2):
            assert np.array_equal(sample.obs[i][b].numpy(), stream.obs[i][step, env])
            assert np.array_equal(sample.actions[i][b].numpy(), stream.actions[i][step, env])
            assert np.array_equal(sample.next_obs[i][b].numpy(), next_obs[i])
    assert lengths == set(range(1, n_step + 1))
    if n_step > 1:  # the three ways a window ends were all met
        assert (sample.discount == 0).any() and (sample.discount == GAMMA**n_step).any()
        assert (sample.discount > GAMMA**n_step + 1e-6).any()  # cut short, bootstrapped


def allocated_by_sample(buffer):
    """Bytes torch allocates while `buffer` samples 64 transitions of 5-step windows."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
        buffer.sample(64, 5, GAMMA, torch.Generator().manual_seed(0))
    return sum(e.cpu_memory_usage for e in profile.events() if e.cpu_memory_usage > 0)


def test_sampling_gathers_rows_without_copying_the_buffer():
    small, large = Stream(steps=150, num_envs=10, capacity=150).buffer, Stream(steps=3000, num_envs=10, capacity=3000).buffer
    storages = [t.data_ptr() for t in (large.state, large.next_state, large.rewards, *large.obs, *large.actions)]
    held = sum(t.numel() * t.element_size() for t in (large.state, large.next_state, *large.obs, *large.next_obs, *large.actions))
    allocated = allocated_by_sample(large)
    assert allocated == allocated_by_sample(small)  # the same for a buffer 20 times larger
    assert 0 < allocated < held / 20, (allocated, held)
    sample = large.sample(64, 5, GAMMA, torch.Generator().manual_seed(0))
    assert [t.data_ptr() for t in (large.state, large.next_state, large.rewards, *large.obs, *large.actions)] == storages
    assert sample.state.shape == (64, 4) and [o.shape for o in sample.obs] == [(64, 3), (64, 2)]
    assert [a.shape for a in sample.actions] == [(64, 1), (64, 2)] and sample.returns.shape == sample.discount.shape == (64,)
    assert [o.shape for o in sample.next_obs] == [(64, 3), (64, 2)] and sample.next_state.shape == (64, 4)


@pytest.mark.parametrize("steps", [30, 137], ids=["filling", "wrapped"])
def test_buffer_state_round_trips_through_a_weights_only_load(steps):
    stream = Stream(steps, num_envs=3, capacity=40)
    saved = io.BytesIO()
    torch.save(stream.buffer.state_dict(), saved)
    assert len(saved.getvalue()) < 1.2 * stream.buffer.nbytes(stream.obs_sizes, stream.action_sizes, 4, min(steps, 40) * 3) + 20_000
    saved.seek(0)
    restored = ReplayBuffer(stream.obs_sizes, stream.action_sizes, 4, 3, 40)
    restored.load_state_dict(torch.load(saved, weights_only=True))
    assert (restored.head, restored.size) == (stream.buffer.head, stream.buffer.size)
    a = stream.buffer.sample(100, 3, GAMMA, torch.Generator().manual_seed(5))
    b = restored.sample(100, 3, GAMMA, torch.Generator().manual_seed(5))
    for key in ("state", "returns", "discount", "next_state"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    with pytest.raises(ValueError, match="does not fit this run's capacity of 20"):
        ReplayBuffer(stream.obs_sizes, stream.action_sizes, 4, 3, 20).load_state_dict(stream.buffer.state_dict())
