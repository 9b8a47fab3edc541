"""The critic kinds, and those of the on-policy algorithms with their advantages (GAE) and their
regression on returns (the off-policy kinds' Q-functions: `q_critic.py`).

- `CriticKind.CENTRALISED` (HAPPO, HATRPO, HAA2C, MAPPO): one V(state) on the global state;
  every agent gets its advantages.
- `CriticKind.PER_AGENT` (IPPO): one V_i(o_i) per agent on that agent's own observation, each
  with its own value normaliser, optimiser and GAE (from the shared team reward); agent i gets
  its own advantages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch.nn import functional as F

import hapo
from hapo.algos.base import Means, OptimizerState, clipped_step, minibatches
from hapo.config import AlgoConfig, Config
from hapo.models import Critic, MovingAverageNormalizer, ValueNormalizer
from hapo.rollout import RolloutStorage


class CriticKind(enum.Enum):
    """What an algorithm's value functions see, and whose advantages each agent is given."""

    CENTRALISED = "centralised"  # V(state)
    PER_AGENT = "per_agent"  # V_i(o_i)
    CENTRALISED_Q = "centralised_q"  # Q(state, joint action), off-policy
    TWIN_Q = "twin_q"  # two Q(state, joint action), the smaller target (TD3), off-policy


class CriticUpdate(OptimizerState):
    """Adam on the Huber loss between V(input) and the (normalised) returns.

    With `value_clip`, the loss is the larger of the plain loss and the loss of the
    prediction clipped to within `clip` of the old prediction (as in MAPPO and HARL).
    """

    def __init__(self, critic: Critic, normalizer: ValueNormalizer | MovingAverageNormalizer | None, cfg: AlgoConfig):
        self.critic, self.normalizer, self.cfg = critic, normalizer, cfg
        self.base_lr = cfg.critic_lr
        self.optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps)

    def update(self, states: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """One critic update.

        Args:
          states: float32 [B, input_size], the critic's inputs (global states or one agent's observations).
          returns: float32 [B], in reward units.
          old_values: float32 [B], the critic's raw outputs (normaliser units) at collection.
        """
        cfg, normalizer = self.cfg, self.normalizer
        per_minibatch = normalizer is not None and normalizer.per_minibatch
        if normalizer is not None and not per_minibatch:
            normalizer.update(returns)
        means = Means()
        for _ in range(cfg.critic_epochs):
            for index in minibatches(len(states), cfg.critic_num_minibatches, generator):
                values = self.critic(states[index])
                target = returns[index]
                if per_minibatch:
                    normalizer.update(target)
                if normalizer is not None:
                    target = normalizer.normalize(target)
                loss = F.huber_loss(values, target, delta=cfg.huber_delta, reduction="none")
                if cfg.value_clip:
                    old = old_values[index]
                    clipped = old + (values - old).clamp(-cfg.clip, cfg.clip)
                    loss = torch.max(loss, F.huber_loss(clipped, target, delta=cfg.huber_delta, reduction="none"))
                loss = loss.mean()
                grad_norm = clipped_step(self.optimizer, loss, self.critic.parameters(), cfg.max_grad_norm)
                means.add(value_loss=loss.item(), grad_norm=grad_norm)
        return means.result()


@dataclass
class CriticHead:
    """One value function with its normaliser and its update."""

    critic: Critic
    normalizer: ValueNormalizer | MovingAverageNormalizer | None
    update: CriticUpdate


@dataclass
class Targets:
    """One head's regression data of an iteration (B = T * N rows)."""

    inputs: torch.Tensor  # float32 [B, input_size]
    returns: torch.Tensor  # float32 [B], in reward units
    old_values: torch.Tensor  # float32 [B], the raw outputs (normaliser units) at collection


@dataclass
class Estimate:
    """An iteration's advantages per agent and each head's regression targets."""

    advantages: list[torch.Tensor]  # per agent, float32 [B] (normalised with algo.advantage_norm)
    targets: list[Targets]  # per head


class Critics:
    """The value functions of an on-policy run: one head (CENTRALISED) or one per agent (PER_AGENT).

    Args:
      kind: the algorithm's critic kind.
      obs_sizes: the agents' observation sizes.
      state_size: the global state's size.
      config: the run's config (model for the networks, algo for normaliser and optimiser).
    """

    def __init__(self, kind: CriticKind, obs_sizes, state_size: int, config: Config):
        if kind not in (CriticKind.CENTRALISED, CriticKind.PER_AGENT):
            raise ValueError(f"Critics are the on-policy value functions; {kind.value} is an off-policy kind (hapo.algos.q_critic)")
        self.kind, self.cfg = kind, config.algo
        self.num_agents = len(obs_sizes)
        sizes = [state_size] if kind is CriticKind.CENTRALISED else list(obs_sizes)
        self.heads: list[CriticHead] = []
        for size in sizes:
            critic = Critic(size, config.model)
            normalizer = None
            if config.algo.value_normalizer:
                normalizer = ValueNormalizer() if config.algo.value_norm_stats == "exact" else MovingAverageNormalizer()
            self.heads.append(CriticHead(critic, normalizer, CriticUpdate(critic, normalizer, config.algo)))

    @property
    def needs_next_obs(self) -> bool:
        """Whether the rollout must keep every agent's next observation (for the bootstrap of V_i(o_i))."""
        return self.kind is CriticKind.PER_AGENT

    def _inputs(self, storage: RolloutStorage) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per head, what it sees before [T, N, input_size] and after [T, N, input_size] each step."""
        T = storage.T
        if self.kind is CriticKind.CENTRALISED:
            return [(storage.state[:T], storage.next_state)]
        assert storage.next_obs is not None, "per-agent critics need a RolloutStorage with next observations"
        return [(obs[:T], next_obs) for obs, next_obs in zip(storage.obs, storage.next_obs, strict=True)]

    def estimate(self, storage: RolloutStorage) -> Estimate:
        """Each head's values, GAE advantages and returns on the rollout (truncation bootstraps)."""
        cfg, T, N = self.cfg, storage.T, storage.N
        targets, advantages = [], []
        for head, (now, after) in zip(self.heads, self._inputs(storage)):
            inputs = now.reshape(T * N, -1)
            with torch.no_grad():
                raw_values = head.critic(inputs)
                next_values = head.critic(after.reshape(T * N, -1))
                values = raw_values
                if head.normalizer is not None:
                    values = head.normalizer.denormalize(raw_values)
                    next_values = head.normalizer.denormalize(next_values)
            head_advantages, returns = hapo.gae(
                storage.rewards, values.reshape(T, N).contiguous(), next_values.reshape(T, N).contiguous(),
                storage.terminated, storage.truncated, cfg.gamma, cfg.gae_lambda,
            )
            head_advantages = head_advantages.flatten()
            if cfg.advantage_norm:
                head_advantages = (head_advantages - head_advantages.mean()) / (head_advantages.std(unbiased=False) + 1e-5)
            advantages.append(head_advantages)
            targets.append(Targets(inputs, returns.flatten(), raw_values))
        if self.kind is CriticKind.CENTRALISED:
            advantages = advantages * self.num_agents
        return Estimate(advantages, targets)

    def update(self, estimate: Estimate, generator: torch.Generator) -> dict[str, float]:
        """Regress every head on its returns; the metrics are means over heads."""
        per_head = [
            head.update.update(t.inputs, t.returns, t.old_values, generator)
            for head, t in zip(self.heads, estimate.targets, strict=True)
        ]
        return {key: sum(m[key] for m in per_head) / len(per_head) for key in per_head[0]}

    def scale_learning_rate(self, fraction: float) -> None:
        for head in self.heads:
            head.update.scale_learning_rate(fraction)

    # Checkpoint layout (format 2): a centralised critic's parts are stored as they are; per-agent
    # critics' as {"agents": [one per agent]}.
    def state_dict(self) -> dict[str, dict | None]:
        return {
            "critic": self._pack([h.critic.state_dict() for h in self.heads]),
            "critic_update": self._pack([h.update.state_dict() for h in self.heads]),
            "normalizer": None if self.heads[0].normalizer is None else self._pack([h.normalizer.state_dict() for h in self.heads]),
        }

    def load_state_dict(self, state: dict) -> None:
        for i, head in enumerate(self.heads):
            head.critic.load_state_dict(self._unpack(state["critic"], i))
            head.update.load_state_dict(self._unpack(state["critic_update"], i))
            if head.normalizer is not None:
                head.normalizer.load_state_dict(self._unpack(state["normalizer"], i))

    def _pack(self, states: list[dict]) -> dict:
        return states[0] if self.kind is CriticKind.CENTRALISED else {"agents": states}

    def _unpack(self, packed: dict, head: int) -> dict:
        if self.kind is CriticKind.CENTRALISED:
            return packed
        agents = packed["agents"]
        if len(agents) != len(self.heads):
            raise ValueError(f"{len(agents)} per-agent critics stored, this run has {len(self.heads)}")
        return agents[head]
