"""The defining detail of each baseline, on batches small enough to check exactly.

MAPPO: simultaneous updates, M = 1 for every agent whatever the others did; a shared actor is
one update on all its agents' rows (the paper's Eq. 5). IPPO: one critic per agent on that
agent's own observation, with its own normaliser and GAE, in the checkpoint. HAA2C: the
unclipped ratio * M * A, a2c_epochs epochs of minibatches.
References: log-probabilities from torch.distributions on the networks' raw outputs, gradients
from autograd on the loss written out here.
"""

import copy

import pytest
import torch
import yaml
from torch.distributions import Categorical, Normal

from hapo import config
from hapo.algos import ALGORITHMS, ON_POLICY_SCHEMES, ActorUpdate, AgentBatch, AgentData, HappoUpdate, simultaneous_update
from hapo.cli import main
from hapo.config import AlgoConfig, ModelConfig
from hapo.models import Actor
from hapo.train import CHECKPOINT_FILE, Trainer

QUIET = ["run.progress=false", "run.tensorboard=false"]

TINY = ModelConfig(hidden_sizes=[8], layernorm="none", output_gain=1.0)
B = 64


def actor_and_data(obs_size, action_size, seed, kind="continuous"):
    """An actor and a batch of its own actions on random observations."""
    torch.manual_seed(seed)
    actor = Actor(obs_size, action_size, kind, TINY)
    obs = torch.randn(B, obs_size)
    with torch.no_grad():
        actions = actor.distribution(obs).sample()
    return actor, AgentData(obs, actions, None)


def reference_distribution(actor, obs):
    """The actor's distribution by torch.distributions on its network's output, differentiable."""
    if actor.kind == "continuous":
        return Normal(actor.net(obs), actor.log_std.exp())
    return Categorical(logits=actor.net(obs))


def reference_log_prob(actor, obs, actions):
    """log pi(a|o) [B], summed over action dimensions."""
    log_prob = reference_distribution(actor, obs).log_prob(actions)
    return log_prob.sum(-1) if actor.kind == "continuous" else log_prob


def reference_entropy(actor, obs):
    entropy = reference_distribution(actor, obs).entropy()
    return entropy.sum(-1) if actor.kind == "continuous" else entropy


def recorded_gradients(updater):
    """The gradients each optimiser step of `updater` applies (after clipping), in parameter order."""
    steps = []
    step = updater.optimizer.step

    def recording_step(*args, **kwargs):
        steps.append([p.grad.clone() for p in updater.actor.parameters()])
        return step(*args, **kwargs)

    updater.optimizer.step = recording_step
    return steps


class Undone(ActorUpdate):
    """Runs an update, drawing from the generator as it would, then puts the actor's old weights back."""

    def __init__(self, inner):
        super().__init__(inner.actor, inner.cfg)
        self.inner = inner

    def update(self, batch, generator):
        before = copy.deepcopy(self.actor.state_dict())
        metrics = self.inner.update(batch, generator)
        self.actor.load_state_dict(before)
        return metrics


class Recording(ActorUpdate):
    """Records the factor it is given, then runs the update."""

    def __init__(self, inner, factors):
        super().__init__(inner.actor, inner.cfg)
        self.inner, self.factors = inner, factors

    def update(self, batch, generator):
        self.factors.append(batch.factor.clone())
        return self.inner.update(batch, generator)


def second_agent_after(algo, first_kept):
    """Agent 2's weights and given factor after an iteration of `algo` on a fixed batch, in the
    order (agent 1, agent 2), with agent 1's update kept or undone."""
    first, first_data = actor_and_data(4, 2, seed=0)
    second, second_data = actor_and_data(3, 1, seed=1)
    start = copy.deepcopy(first.state_dict())
    advantages = torch.randn(B, generator=torch.Generator().manual_seed(2))
    algorithm = ALGORITHMS[algo]
    cfg = AlgoConfig(ppo_epochs=4, num_minibatches=2, actor_lr=1e-2, clip=0.3)
    first_update = algorithm.actor_update(first, cfg)
    factors: list[torch.Tensor] = []
    updaters = [first_update if first_kept else Undone(first_update), Recording(algorithm.actor_update(second, cfg), factors)]
    scheme = ON_POLICY_SCHEMES[algorithm.scheme]
    scheme([first, second], updaters, [first_data, second_data], advantages, [0, 1], torch.Generator().manual_seed(3))
    moved = max((a - b).abs().max().item() for a, b in zip(first.state_dict().values(), start.values()))
    assert (moved > 1e-3) == first_kept  # agent 1 really changed, or really did not
    (factor,) = factors
    return [p.detach().clone() for p in second.parameters()], factor


def test_mappo_agent_update_ignores_the_new_policies_of_the_agents_before_it():
    kept, kept_factor = second_agent_after("mappo", first_kept=True)
    undone, undone_factor = second_agent_after("mappo", first_kept=False)
    assert torch.equal(kept_factor, torch.ones(B)) and torch.equal(undone_factor, torch.ones(B))
    assert all(torch.equal(a, b) for a, b in zip(kept, undone, strict=True))


def test_happo_agent_update_depends_on_the_new_policies_of_the_agents_before_it():
    """The same experiment under HAPPO: agent 1's update changes agent 2's factor and update."""
    kept, kept_factor = second_agent_after("happo", first_kept=True)
    undone, undone_factor = second_agent_after("happo", first_kept=False)
    assert torch.equal(undone_factor, torch.ones(B))
    assert (kept_factor - 1).abs().max() > 0.05
    assert max((a - b).abs().max().item() for a, b in zip(kept, undone, strict=True)) > 1e-4


def test_a_shared_actor_is_updated_once_on_all_its_agents_rows():
    """Eq. 5: one step along the gradient of the mean surrogate over both agents' rows."""
    actor, first = actor_and_data(5, 2, seed=4)
    _, second = actor_and_data(5, 2, seed=5)
    advantages = [torch.randn(B, generator=torch.Generator().manual_seed(k)) for k in (6, 7)]
    with torch.no_grad():
        old = [reference_log_prob(actor, d.obs, d.actions) for d in (first, second)]
    surrogate = torch.cat([
        torch.exp(reference_log_prob(actor, d.obs, d.actions) - o) * a for d, o, a in zip((first, second), old, advantages)
    ]).mean()
    expected = torch.autograd.grad(-surrogate, list(actor.parameters()))

    updater = HappoUpdate(actor, AlgoConfig(ppo_epochs=1, num_minibatches=1, max_grad_norm=1e9))
    steps = recorded_gradients(updater)
    result = simultaneous_update([actor, actor], [updater, updater], [first, second], advantages, [1, 0], torch.Generator())
    assert len(steps) == 1
    for got, want in zip(steps[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)  # float32 sums in another order
    assert result.metrics[0] is result.metrics[1]


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_haa2c_step_is_the_gradient_of_the_unclipped_ratio_times_factor_and_advantage(kind):
    """loss = -mean(r * M * A) - c_H * entropy, with ratios far outside 1 +- clip (PPO's clip would change it)."""
    actor, data = actor_and_data(4, 3, seed=8, kind=kind)
    gen = torch.Generator().manual_seed(9)
    advantages, factor = torch.randn(B, generator=gen), torch.exp(0.3 * torch.randn(B, generator=gen))
    with torch.no_grad():
        old_params = actor.dist_params(data.obs)
        old_log_prob = reference_log_prob(actor, data.obs, data.actions) + 0.5 * torch.randn(B, generator=gen)
    cfg = AlgoConfig(a2c_epochs=1, num_minibatches=1, clip=0.1, entropy_coef=0.05, max_grad_norm=1e9)
    ratio = torch.exp(reference_log_prob(actor, data.obs, data.actions) - old_log_prob)
    entropy_bonus = cfg.entropy_coef * reference_entropy(actor, data.obs).mean()
    params = list(actor.parameters())
    expected = torch.autograd.grad(-(ratio * factor * advantages).mean() - entropy_bonus, params, retain_graph=True)
    clipped_surrogate = torch.min(ratio * factor * advantages, ratio.clamp(0.9, 1.1) * factor * advantages).mean()
    clipped = torch.autograd.grad(-clipped_surrogate - entropy_bonus, params)
    assert max((a - b).abs().max().item() for a, b in zip(expected, clipped)) > 1e-3  # the clip would matter here

    updater = ALGORITHMS["haa2c"].actor_update(actor, cfg)
    steps = recorded_gradients(updater)
    updater.update(AgentBatch(data.obs, data.actions, None, advantages, old_log_prob, old_params, factor), torch.Generator())
    assert len(steps) == 1
    for got, want in zip(steps[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)  # float32 sums in another order


def test_haa2c_takes_a2c_epochs_of_minibatches():
    actor, data = actor_and_data(4, 2, seed=10)
    with torch.no_grad():
        old_params = actor.dist_params(data.obs)
        old_log_prob = actor.log_prob_from_params(old_params, data.actions)
    updater = ALGORITHMS["haa2c"].actor_update(actor, AlgoConfig(a2c_epochs=3, num_minibatches=2, ppo_epochs=7))
    steps = recorded_gradients(updater)
    metrics = updater.update(AgentBatch(data.obs, data.actions, None, torch.randn(B), old_log_prob, old_params, torch.ones(B)), torch.Generator())
    assert len(steps) == 3 * 2
    assert set(metrics) == {"policy_loss", "entropy", "approx_kl", "grad_norm"}


def ippo_on_halfcheetah_3x2(*overrides):
    """IPPO on MaMuJoCo's local views of HalfCheetah 3x2: observations of 10, 12 and 11, state of 17."""
    return Trainer(config.Config().with_overrides(QUIET + [
        "algo.name=ippo", "env.agent_conf=3x2", "env.num_envs=3", "algo.rollout_length=8", "run.num_env_steps=48",
        "run.eval_interval=0", "model.hidden_sizes=[16]", "algo.ppo_epochs=1", "algo.critic_epochs=2", *overrides,
    ]))


def test_ippo_has_a_critic_and_a_normaliser_per_agent_on_its_own_observation():
    trainer = ippo_on_halfcheetah_3x2()
    heads = trainer.critics.heads
    assert [h.critic.net.layers[0].in_features for h in heads] == [10, 12, 11] == list(trainer.env.obs_sizes)
    assert trainer.env.state_size == 17
    assert len({id(h.normalizer) for h in heads}) == 3 and all(h.normalizer is not None for h in heads)
    with pytest.raises(AttributeError, match="3 critics, one per agent"):
        trainer.critic


@pytest.mark.parametrize("agent", [0, 1, 2])
def test_ippo_critic_values_depend_on_their_own_agent_only(agent):
    """Changing the other agents' observations leaves agent i's values, returns and advantages as
    they were, bit for bit; changing its own changes them."""
    trainer = ippo_on_halfcheetah_3x2("algo.advantage_norm=false")
    trainer._collect()
    s = trainer.storage
    before = trainer.critics.estimate(s)
    for other in set(range(3)) - {agent}:
        s.obs[other].normal_()
        s.next_obs[other].normal_()
    others_changed = trainer.critics.estimate(s)
    mine = others_changed.targets[agent]
    assert torch.equal(mine.inputs, before.targets[agent].inputs)
    assert torch.equal(mine.old_values, before.targets[agent].old_values)
    assert torch.equal(mine.returns, before.targets[agent].returns)
    assert torch.equal(others_changed.advantages[agent], before.advantages[agent])
    # GAE from its own values: returns = advantages + V_i(o_i) in reward units
    values = trainer.critics.heads[agent].normalizer.denormalize(mine.old_values)
    torch.testing.assert_close(mine.returns, others_changed.advantages[agent] + values)
    for other in set(range(3)) - {agent}:
        assert not torch.equal(others_changed.targets[other].old_values, before.targets[other].old_values)
        assert not torch.equal(others_changed.advantages[other], before.advantages[other])

    s.obs[agent].normal_()
    assert not torch.equal(trainer.critics.estimate(s).targets[agent].old_values, mine.old_values)


def test_ippo_critics_share_the_team_reward():
    trainer = ippo_on_halfcheetah_3x2("algo.advantage_norm=false")
    trainer._collect()
    before = trainer.critics.estimate(trainer.storage)
    trainer.storage.rewards[-1] += 1.0  # the last step's reward, seen by every agent's return
    after = trainer.critics.estimate(trainer.storage)
    for old, new in zip(before.targets, after.targets, strict=True):
        torch.testing.assert_close(new.returns[-3:] - old.returns[-3:], torch.ones(3))


def test_ippo_checkpoint_holds_every_agent_critic_and_restores_each_in_its_place(tmp_path):
    cfg = ippo_on_halfcheetah_3x2().config.with_overrides(["run.checkpoint_interval=2"])
    trainer = Trainer(cfg, tmp_path)
    trainer.train(iterations=2)
    data = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert [len(data[key]["agents"]) for key in ("critic", "critic_update", "normalizer")] == [3, 3, 3]
    means = [h.normalizer.mean.item() for h in trainer.critics.heads]
    assert len(set(means)) == 3  # three normalisers that saw three agents' returns

    restored = Trainer(cfg)
    restored.load_checkpoint(tmp_path / CHECKPOINT_FILE)
    for mine, theirs in zip(restored.critics.heads, trainer.critics.heads, strict=True):
        for a, b in zip(mine.critic.state_dict().values(), theirs.critic.state_dict().values(), strict=True):
            assert torch.equal(a, b)
        assert all(torch.equal(a, b) for a, b in zip(mine.normalizer.state_dict().values(), theirs.normalizer.state_dict().values()))
        adam, saved = mine.update.optimizer.state_dict()["state"], theirs.update.optimizer.state_dict()["state"]
        assert adam.keys() == saved.keys() and all(torch.equal(adam[k]["exp_avg_sq"], saved[k]["exp_avg_sq"]) for k in adam)


@pytest.mark.parametrize(("task", "algo", "expected"), [
    ("HalfCheetah 2x3", "mappo", {"clip": 0.05, "ppo_epochs": 15, "share_param": True, "fixed_order": True}),
    ("Walker2d 6x1", "mappo", {"clip": 0.1, "ppo_epochs": 5, "share_param": True, "fixed_order": True}),
    ("Ant 4x2", "ippo", {"clip": 0.1, "ppo_epochs": 5, "share_param": True, "fixed_order": True}),
    ("Hopper 3x1", "haa2c", {"a2c_epochs": 3, "actor_lr": 1e-4, "share_param": False, "fixed_order": False}),
    ("Walker2d 2x3", "hatd3", {"n_step": 20, "policy_freq": 8, "train_interval": 50, "fixed_order": False}),
    ("Ant 4x2", "maddpg", {"n_step": 20, "expl_noise": 0.05, "update_per_train": 0.5, "fixed_order": True}),
])
def test_cli_picks_the_baseline_tuned_config(capsys, task, algo, expected):
    scenario, conf = task.split()
    assert main(["--scenario", scenario, "--agent-conf", conf, "--algo", algo, "--print-config"]) == 0
    printed = config.Config.from_dict(yaml.safe_load(capsys.readouterr().out))
    assert (printed.env.scenario, printed.env.agent_conf, printed.algo.name) == (scenario, conf, algo)
    assert {key: getattr(printed.algo, key) for key in expected} == expected
    assert printed.env.obs_mode == "global"


def test_algo_name_help_lists_every_algorithm():
    help_text = next(f.metadata["help"] for f in config.AlgoConfig.__dataclass_fields__.values() if f.name == "name")
    assert all(name in help_text for name in ALGORITHMS)
