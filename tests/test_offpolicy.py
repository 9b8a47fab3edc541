"""The off-policy family: the replay buffer and its n-step returns against plain NumPy loops; training
on the toy task, determinism and exact resume; the defining detail of each algorithm."""

from __future__ import annotations

import copy
import functools
import io
import json
import math

import numpy as np
import pytest
import torch

from hapo import config
from hapo.algos import ALGORITHMS, CriticKind, DeterministicActorUpdate, QCritic, Scheme, sequential_q_update, simultaneous_q_update
from hapo.config import ConfigError
from hapo.experiments.evaluate import main as evaluate_main
from hapo.logger import METRICS_FILE, read_csv
from hapo.models import DeterministicActor, JointPolicy
from hapo.offpolicy import OffPolicyTrainer
from hapo.replay import ReplayBuffer, n_step_returns
from hapo.train import CHECKPOINT_FILE, Trainer, load_policy

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
    written to a ReplayBuffer. state[..., 0] of each transition is its id: step * N + env.
    With obs_from_state, agent i observes the state followed by its one-hot id (the paper's
    setting), and the buffer stores the states only."""

    def __init__(self, steps, num_envs, capacity, seed=0, obs_from_state=False):
        rng = np.random.default_rng(seed)
        self.T, self.N = steps, num_envs
        self.obs_sizes, self.action_sizes, self.state_size = ((6, 6) if obs_from_state else (3, 2)), (1, 2), 4
        self.state = rng.normal(size=(steps, num_envs, 4)).astype(np.float32)
        self.state[..., 0] = np.arange(steps * num_envs).reshape(steps, num_envs)
        self.next_state = rng.normal(size=(steps, num_envs, 4)).astype(np.float32)
        if obs_from_state:
            ids = np.eye(2, dtype=np.float32)
            self.obs, self.next_obs = (
                [np.concatenate([s, np.broadcast_to(ids[i], (steps, num_envs, 2))], axis=-1) for i in range(2)]
                for s in (self.state, self.next_state)
            )
        else:
            self.obs = [rng.normal(size=(steps, num_envs, k)).astype(np.float32) for k in self.obs_sizes]
            self.next_obs = [rng.normal(size=(steps, num_envs, k)).astype(np.float32) for k in self.obs_sizes]
        self.actions = [rng.uniform(-1, 1, size=(steps, num_envs, k)).astype(np.float32) for k in self.action_sizes]
        self.rewards = rng.normal(size=(steps, num_envs)).astype(np.float32)
        ends = rng.random((steps, num_envs))
        self.terminated = ends < 0.08
        self.truncated = (ends >= 0.08) & (ends < 0.16)
        self.buffer = ReplayBuffer(self.obs_sizes, self.action_sizes, self.state_size, num_envs, capacity, obs_from_state)
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
@pytest.mark.parametrize("obs_from_state", [False, True], ids=["stored_obs", "obs_from_state"])
def test_samples_hold_n_step_returns_that_stop_at_episode_ends(steps, capacity, n_step, obs_from_state):
    """Terminated: no bootstrap; truncated: bootstrap from the final observation; the latest
    step of an env: bootstrap from its next observation (its next step is not collected yet).
    Observations rebuilt from the states equal the ones the stream observed."""
    stream = Stream(steps, num_envs=3, capacity=capacity, obs_from_state=obs_from_state)
    assert len(stream.buffer.obs) == (0 if obs_from_state else 2)
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
@pytest.mark.parametrize("obs_from_state", [False, True], ids=["stored_obs", "obs_from_state"])
def test_buffer_state_round_trips_through_a_weights_only_load(steps, obs_from_state):
    stream = Stream(steps, num_envs=3, capacity=40, obs_from_state=obs_from_state)
    saved = io.BytesIO()
    torch.save(stream.buffer.state_dict(), saved)
    nbytes = stream.buffer.nbytes(stream.obs_sizes, stream.action_sizes, 4, min(steps, 40) * 3, obs_from_state)
    assert len(saved.getvalue()) < 1.2 * nbytes + 20_000
    saved.seek(0)
    restored = ReplayBuffer(stream.obs_sizes, stream.action_sizes, 4, 3, 40, obs_from_state)
    restored.load_state_dict(torch.load(saved, weights_only=True))
    assert (restored.head, restored.size) == (stream.buffer.head, stream.buffer.size)
    a = stream.buffer.sample(100, 3, GAMMA, torch.Generator().manual_seed(5))
    b = restored.sample(100, 3, GAMMA, torch.Generator().manual_seed(5))
    for key in ("state", "returns", "discount", "next_state"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    for key in ("obs", "next_obs"):
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, key), getattr(b, key), strict=True)), key
    with pytest.raises(ValueError, match="does not fit this run's capacity of 20"):
        ReplayBuffer(stream.obs_sizes, stream.action_sizes, 4, 3, 20).load_state_dict(stream.buffer.state_dict())


def test_a_buffer_that_rebuilds_observations_from_states_refuses_other_observations():
    stored, derived = Stream(30, num_envs=3, capacity=40), Stream(30, num_envs=3, capacity=40, obs_from_state=True)
    # A saved buffer with observations loads into one that rebuilds them (they are dropped)...
    rebuilt = ReplayBuffer(derived.obs_sizes, derived.action_sizes, 4, 3, 40, obs_from_state=True)
    full = ReplayBuffer(derived.obs_sizes, derived.action_sizes, 4, 3, 40)
    for t in range(30):
        full.add([o[t] for o in derived.obs], derived.state[t], [a[t] for a in derived.actions], derived.rewards[t],
                 derived.terminated[t], derived.truncated[t], [o[t] for o in derived.next_obs], derived.next_state[t])
    rebuilt.load_state_dict(full.state_dict())
    a, b = full.sample(50, 3, GAMMA, torch.Generator().manual_seed(2)), rebuilt.sample(50, 3, GAMMA, torch.Generator().manual_seed(2))
    assert all(torch.equal(x, y) for x, y in zip(a.obs + a.next_obs, b.obs + b.next_obs, strict=True))
    # ...but not the other way round.
    with pytest.raises(ValueError, match="holds no observations"):
        full.load_state_dict(derived.buffer.state_dict())
    # Observations that are not the state plus the agent's id are refused as they come.
    obs = [o[0].copy() for o in derived.obs]
    obs[1][2, 4:] = [1.0, 0.0]  # agent 0's id
    with pytest.raises(ValueError, match="agent 1's observation is not the state followed by its one-hot id"):
        derived.buffer.add(obs, derived.state[0], [a[0] for a in derived.actions], derived.rewards[0],
                           derived.terminated[0], derived.truncated[0], [o[0] for o in derived.next_obs], derived.next_state[0])
    with pytest.raises(ValueError, match="state .4. followed by a one-hot id among 2 agents, 6 entries; got observation sizes .3, 2."):
        ReplayBuffer(stored.obs_sizes, stored.action_sizes, 4, 3, 40, obs_from_state=True)


# -- training ----------------------------------------------------------------------------------
OFF_POLICY = ["maddpg", "matd3", "haddpg", "hatd3"]
QUIET = ["run.progress=false", "run.tensorboard=false"]


def toy(algo, *overrides):
    return config.load("toy_reach_maddpg").with_overrides(QUIET + [f"algo.name={algo}", *overrides])


def short(algo, *overrides):
    """7 iterations of 10 steps of 4 envs: random actions in the first two, and 3 updates of 32 each
    from the end of the second on."""
    return toy(algo, "env.num_envs=4", "algo.warmup_steps=80", "algo.batch_size=32", "algo.update_per_train=0.3",
               "run.num_env_steps=280", "run.eval_interval=2", "run.eval_episodes=4", "run.eval_num_envs=2",
               "run.checkpoint_interval=3", *overrides)


@pytest.mark.parametrize("algo", OFF_POLICY)
def test_solves_toy_reach(algo, toy_reach_returns):
    """Deterministic return closes most of the gap between doing nothing and the optimal controller."""
    trainer = Trainer(toy(algo))
    assert isinstance(trainer, OffPolicyTrainer)
    trainer.train()
    learned = trainer.evaluate(200)
    idle, optimum = toy_reach_returns
    assert learned > idle + 0.9 * (optimum - idle), (learned, idle, optimum)


@pytest.mark.parametrize("algo", OFF_POLICY)
def test_two_runs_with_one_seed_are_identical_and_another_seed_differs(tmp_path, algo):
    rows = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        Trainer(short(algo, f"run.seed={seed}"), tmp_path / name).train()
        rows.append(read_csv(tmp_path / name / METRICS_FILE))
    assert len(rows[0]) == 7 and rows[0] == rows[1] and rows[0] != rows[2]
    assert [r["updates/critic"] for r in rows[0]] == ["0", "3", "3", "3", "3", "3", "3"]  # warm-up, then 3 updates
    assert rows[0][0]["critic/q_loss"] == "" and all(r["critic/q_loss"] != "" for r in rows[0][1:])


@pytest.mark.parametrize("algo", OFF_POLICY)
def test_resumed_run_writes_the_rows_of_an_uninterrupted_run(tmp_path, algo):
    Trainer(short(algo), tmp_path / "full").train()
    interrupted = Trainer(short(algo), tmp_path / "part")
    interrupted.train(iterations=5)  # checkpoint at 3; rows 4 and 5 are lost with the "crash"
    checkpoint = torch.load(tmp_path / "part" / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["replay"]["size"] == 3 * 10 and checkpoint["critic_updates"] == 2 * 3
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.buffer.transitions == 3 * 10 * 4
    resumed.train()
    assert read_csv(tmp_path / "part" / METRICS_FILE) == read_csv(tmp_path / "full" / METRICS_FILE)


def test_without_the_buffer_in_the_checkpoint_a_resumed_run_refills_it(tmp_path, caplog):
    cfg = short("hatd3", "run.checkpoint_buffer=false")
    Trainer(cfg, tmp_path / "with").train(iterations=3)
    Trainer(short("hatd3"), tmp_path / "without").train(iterations=3)
    assert (tmp_path / "with" / CHECKPOINT_FILE).stat().st_size < (tmp_path / "without" / CHECKPOINT_FILE).stat().st_size
    assert torch.load(tmp_path / "with" / CHECKPOINT_FILE, weights_only=True)["replay"] is None
    resumed = Trainer.resume(tmp_path / "with")
    assert "holds no replay buffer" in caplog.text and resumed.buffer.transitions == 0
    rows = resumed.train()
    # 40 transitions an iteration: the batch of 32 is there again after the first.
    assert [r["updates/critic"] for r in rows] == [3, 3, 3, 3] and resumed.buffer.transitions == 4 * 40


def test_discrete_actions_and_shared_actors_are_refused():
    with pytest.raises(ConfigError, match="hatd3 acts with deterministic actors, which need continuous actions; ToySplit has discrete ones"):
        Trainer(config.load("toy_split").with_overrides(QUIET + ["algo.name=hatd3"]))
    with pytest.raises(ConfigError, match="algo.share_param is not supported by maddpg"):
        Trainer(toy("maddpg", "algo.share_param=true"))
    with pytest.raises(ConfigError, match=r"run.num_env_steps \(100\) is less than one iteration's batch: env.num_envs \* algo.train_interval = 160"):
        Trainer(toy("maddpg", "run.num_env_steps=100"))
    with pytest.raises(ConfigError, match="algo.buffer_size \\(100\\) must hold algo.batch_size \\(256\\)"):
        Trainer(toy("maddpg", "algo.buffer_size=100"))


# -- the defining details ----------------------------------------------------------------------
def parameters_of(modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


@pytest.mark.parametrize(("algo", "policy_freq"), [("maddpg", 1), ("hatd3", 2), ("matd3", 3)])
def test_target_networks_move_by_exactly_polyak_tau_when_the_actors_update(algo, policy_freq):
    """After an update with an actor step: target = (1 - tau) * old target + tau * online (the
    online weights after that update), for every actor's and critic's target; after an update
    without one (TD3's delay), the targets stay as they were."""
    tau = 0.3
    trainer = Trainer(short(algo, f"algo.polyak={tau}", f"algo.policy_freq={policy_freq}", "algo.update_per_train=0.1"))  # 1 update each
    trainer.train(iterations=1)  # warm-up: no update yet
    onlines = [u.actor for u in trainer.updaters] + trainer.critic.heads
    targets = [u.target for u in trainer.updaters] + trainer.critic.targets
    assert len(trainer.critic.heads) == (2 if algo.endswith("td3") else 1)
    for update in range(1, 1 + 2 * policy_freq):
        old_targets, old_onlines = parameters_of(targets), parameters_of(onlines)
        row = trainer.iterate()
        assert row["updates/critic"] == 1 and trainer.critic_updates == update
        new_targets, new_onlines = parameters_of(targets), parameters_of(onlines)
        assert any(not torch.equal(a, b) for a, b in zip(old_onlines, new_onlines))  # the critic moved at least
        if update % policy_freq:
            assert row["updates/actor"] == 0
            assert all(torch.equal(a, b) for a, b in zip(old_targets, new_targets, strict=True))
            continue
        assert row["updates/actor"] == 1
        for old, online, new in zip(old_targets, new_onlines, new_targets, strict=True):
            assert not torch.equal(new, old)
            torch.testing.assert_close(new, (1 - tau) * old + tau * online, rtol=1e-6, atol=1e-7)


class Undone:
    """Runs an agent's update, then puts its actor's old weights back (its optimiser state stays)."""

    def __init__(self, inner):
        self.inner, self.actor = inner, inner.actor

    def update(self, *args):
        before = copy.deepcopy(self.actor.state_dict())
        metrics = self.inner.update(*args)
        self.actor.load_state_dict(before)
        return metrics


def second_agent_gradient(scheme, first_kept):
    """Agent 2's actor gradient in one actor step of `scheme` in the order (agent 1, agent 2),
    with agent 1's update kept or undone, and (agent 1's actor before and after, agent 2's before)."""
    torch.manual_seed(0)
    cfg = config.Config().with_overrides(["model.hidden_sizes=[16]", "model.layernorm=none", "model.output_gain=1.0", "algo.actor_lr=0.05"])
    first = DeterministicActor(4, -np.ones(2), np.ones(2), cfg.model)
    second = DeterministicActor(3, -2 * np.ones(1), 2 * np.ones(1), cfg.model)
    critic = QCritic(CriticKind.TWIN_Q, 5, [2, 1], cfg)
    state, obs = torch.randn(256, 5), [torch.randn(256, 4), torch.randn(256, 3)]
    with torch.no_grad():  # the buffer's actions: what the actors do now, so that only the update can differ
        actions = [first(obs[0]), second(obs[1])]
    starts = [copy.deepcopy(a) for a in (first, second)]
    updaters = [DeterministicActorUpdate(a, cfg.algo) for a in (first, second)]
    scheme([updaters[0] if first_kept else Undone(updaters[0]), updaters[1]], obs, actions, functools.partial(critic.value, state), [0, 1])
    gradient = [p.grad.clone() for p in second.parameters()]  # its one step's (the next update would clear them)
    return gradient, (starts[0], copy.deepcopy(first), starts[1]), (critic, state, obs)


def reference_gradient(first, second, critic, state, obs):
    """d/d(second's weights) of -mean Q1(state, [first(o1), second(o2)]), by autograd on a copy."""
    second = copy.deepcopy(second)
    with torch.no_grad():
        first_action = first(obs[0])
    loss = -critic.heads[0](state, [first_action, second(obs[1])]).mean()
    return torch.autograd.grad(loss, list(second.parameters()))


def test_hatd3_agent_sees_the_new_actions_of_the_agents_updated_before_it():
    gradient, (first_before, first_after, second_before), (critic, state, obs) = second_agent_gradient(sequential_q_update, first_kept=True)
    assert max((a - b).abs().max().item() for a, b in zip(first_before.parameters(), first_after.parameters())) > 1e-3
    seen = reference_gradient(first_after, second_before, critic, state, obs)
    unseen = reference_gradient(first_before, second_before, critic, state, obs)
    for got, want in zip(gradient, seen, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert max((a - b).abs().max().item() for a, b in zip(seen, unseen)) > 1e-4  # agent 1's update matters here


def test_hatd3_agent_gradient_with_the_earlier_update_undone_is_matd3s():
    """MATD3 holds agent 1 at its buffer action (here agent 1's current action), whatever its update."""
    undone, *_ = second_agent_gradient(sequential_q_update, first_kept=False)
    matd3, (first_before, _, second_before), (critic, state, obs) = second_agent_gradient(simultaneous_q_update, first_kept=True)
    for a, b in zip(undone, matd3, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    for got, want in zip(matd3, reference_gradient(first_before, second_before, critic, state, obs), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    kept, *_ = second_agent_gradient(sequential_q_update, first_kept=True)
    assert max((a - b).abs().max().item() for a, b in zip(kept, matd3)) > 1e-4


def test_registry_combines_the_off_policy_pieces():
    expected = {
        "maddpg": (Scheme.SIMULTANEOUS, CriticKind.CENTRALISED_Q), "matd3": (Scheme.SIMULTANEOUS, CriticKind.TWIN_Q),
        "haddpg": (Scheme.SEQUENTIAL, CriticKind.CENTRALISED_Q), "hatd3": (Scheme.SEQUENTIAL, CriticKind.TWIN_Q),
    }
    assert {name: (a.scheme, a.critic) for name, a in ALGORITHMS.items() if a.off_policy} == expected
    assert Trainer(short("hatd3")).update_scheme is sequential_q_update
    assert Trainer(short("matd3")).update_scheme is simultaneous_q_update


def test_target_policy_smoothing_is_clipped_noise_inside_the_box():
    cfg = config.Config().with_overrides(["algo.policy_noise=0.4", "algo.noise_clip=0.5"])
    offset, scale = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0])  # boxes [-1, 1] and [-1, 3]
    actions = torch.tensor([[0.0, 1.0], [0.9, 2.9]]).repeat(5000, 1)
    twin = QCritic(CriticKind.TWIN_Q, 3, [2], cfg).bootstrap_actions(actions, offset, scale, torch.Generator().manual_seed(0))
    noise = twin - actions
    centre = noise[0::2]  # actions in the middle of the box: only the noise clip bounds them
    assert torch.allclose(centre.abs().max(0).values, 0.5 * scale)  # clipped at noise_clip * scale
    # The std of N(0, s^2) clipped at +-k s: s sqrt(erf(k / sqrt 2) - 2 k phi(k) + 2 k^2 Phi(-k)).
    k = 0.5 / 0.4
    phi, tail = math.exp(-k * k / 2) / math.sqrt(2 * math.pi), 0.5 * math.erfc(k / math.sqrt(2))
    clipped_std = math.sqrt(math.erf(k / math.sqrt(2)) - 2 * k * phi + 2 * k * k * tail)
    torch.testing.assert_close(centre.std(0), 0.4 * scale * clipped_std, rtol=0.03, atol=0)
    assert (twin[1::2] <= offset + scale).all() and (twin[1::2] == offset + scale).any()  # clamped to the box
    single = QCritic(CriticKind.CENTRALISED_Q, 3, [2], cfg).bootstrap_actions(actions, offset, scale, torch.Generator())
    assert torch.equal(single, actions)  # DDPG's target actions are the target actors' own


def test_joint_policy_acts_with_deterministic_actors_in_their_box():
    torch.manual_seed(2)
    model = config.Config().model
    actors = [DeterministicActor(4, [-1.0, 0.0], [1.0, 4.0], model), DeterministicActor(4, [-3.0, 0.0], [3.0, 1.0], model)]
    for actor in actors:
        torch.nn.init.normal_(actor.net.layers[-1].weight, std=3.0)
    obs = [torch.randn(500, 4), torch.randn(500, 4)]
    actions = JointPolicy(actors).act(obs, deterministic=True)
    for actor, o, a in zip(actors, obs, actions, strict=True):
        torch.testing.assert_close(a, actor(o))
        assert (a >= actor.offset - actor.scale).all() and (a <= actor.offset + actor.scale).all()
        assert (a.amax(0) - a.amin(0) > 0.8 * 2 * actor.scale).all()  # the whole box is reached, not a fixed range
    with pytest.raises(ValueError, match="no distribution to sample from"):
        JointPolicy(actors).act(obs)


def test_load_policy_and_hapo_eval_take_the_trained_deterministic_actors(tmp_path, capsys):
    trainer = Trainer(short("hatd3"), tmp_path)
    trainer.train()
    loaded_config, policy = load_policy(tmp_path)
    assert loaded_config == trainer.config
    obs = [torch.randn(7, n) for n in trainer.env.obs_sizes]
    for a, b in zip(policy.act(obs, deterministic=True), trainer.policy().act(obs, deterministic=True), strict=True):
        assert torch.equal(a, b)
    assert evaluate_main([str(tmp_path), "--episodes", "3", "--num-envs", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["returns"]) == 3
    with pytest.raises(SystemExit):
        evaluate_main([str(tmp_path), "--stochastic"])
    assert "hatd3's actors are deterministic" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["maddpg", "hatd3"])
def test_mujoco_iteration_gives_finite_metrics(algo):
    """Two short iterations on HalfCheetah 2x3 through the C++ env, end to end."""
    cfg = config.load(f"halfcheetah_2x3_{algo}").with_overrides(QUIET + [
        "env.num_envs=4", "algo.train_interval=20", "algo.warmup_steps=80", "algo.batch_size=64", "algo.update_per_train=0.1",
        "run.num_env_steps=160", "run.eval_interval=1", "run.eval_episodes=1", "run.eval_num_envs=1", "model.hidden_sizes=[32]",
    ])
    trainer = Trainer(cfg)
    # The paper's setting: every agent observes the state plus its id, so the buffer keeps the states only.
    assert cfg.env.obs_mode == "global" and trainer.buffer.obs_from_state and trainer.buffer.obs == []
    rows = trainer.train()
    assert len(rows) == 2 and trainer.env_steps == 160 and rows[-1]["updates/critic"] == 2
    numeric = {k: v for k, v in rows[-1].items() if isinstance(v, float)}
    assert "critic/q_loss" in numeric and all(np.isfinite(v) for v in numeric.values()), numeric
