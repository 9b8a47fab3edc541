"""The replay buffer of the off-policy algorithms: a ring of preallocated tensors, sampled by index,
with n-step returns that stop at episode ends.

Data flow: every vector step of the N training envs writes one slot (N transitions) at `head`;
once the ring is full the oldest slot is overwritten. A sample draws B (slot, env) pairs
uniformly with replacement and gathers only those rows (and their n-step windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def n_step_returns(rewards: torch.Tensor, ended: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Discounted sums of up to n rewards of each window, stopping after the first ended step.

    Args:
      rewards: float32 [n, B], rewards[k, b] of the k-th step of window b (k = 0 the sampled step).
      ended: bool [n, B], True where the window must stop after step k: the episode ended there
        (terminated or truncated), or no later step of that env has been collected yet.
      gamma: the discount.

    Returns:
      returns: float32 [B], sum over k < m of gamma^k * rewards[k].
      steps: int64 [B], m = the steps in the window: 1 + the first k with ended[k], or n.
    """
    n = rewards.shape[0]
    # open[k]: no step before k ended, so step k belongs to the window.
    still_open = torch.cat([torch.ones_like(ended[:1]), ~ended[:-1]]).to(torch.int64).cumprod(0)
    discounts = gamma ** torch.arange(n, dtype=torch.float64)
    returns = (rewards.double() * still_open * discounts[:, None]).sum(0)
    return returns.to(rewards.dtype), still_open.sum(0)


@dataclass
class ReplaySample:
    """B sampled transitions with their n-step targets' inputs.

    The critic's target is `returns + discount * Q_target(next_state, mu_target(next_obs))`.
    """

    state: torch.Tensor  # float32 [B, state_size]
    obs: list[torch.Tensor]  # per agent, float32 [B, obs_size]
    actions: list[torch.Tensor]  # per agent, float32 [B, action_size]: the actions taken
    returns: torch.Tensor  # float32 [B]: the window's discounted reward sum
    discount: torch.Tensor  # float32 [B]: gamma^m, 0 if the window's last step terminated the episode
    next_state: torch.Tensor  # float32 [B, state_size]: the state after the window's last step
    next_obs: list[torch.Tensor]  # per agent, float32 [B, obs_size]


class ReplayBuffer:
    """Transitions of N environments in a ring of `capacity` slots of N rows each.

    Slot t holds, for every env j, what the agents saw before a vector step (`obs`, `state`),
    what they did (`actions`), its `reward`, `terminated` and `truncated` flags, and the
    observation after it (`next_obs`, `next_state`: the episode's final one where it ended,
    so a truncated step bootstraps from where the episode was cut).

    Args:
      obs_sizes, action_sizes: per agent.
      state_size: the global state's size.
      num_envs: N, the transitions per slot.
      capacity: slots (the buffer holds capacity * N transitions).
    """

    def __init__(self, obs_sizes: Sequence[int], action_sizes: Sequence[int], state_size: int, num_envs: int, capacity: int):
        if capacity < 1 or num_envs < 1:
            raise ValueError(f"a replay buffer needs capacity >= 1 and num_envs >= 1, got {capacity} and {num_envs}")
        C, N = capacity, num_envs
        self.capacity, self.num_envs = C, N
        self.obs = [torch.zeros(C, N, size) for size in obs_sizes]
        self.next_obs = [torch.zeros(C, N, size) for size in obs_sizes]
        self.actions = [torch.zeros(C, N, size) for size in action_sizes]
        self.state = torch.zeros(C, N, state_size)
        self.next_state = torch.zeros(C, N, state_size)
        self.rewards = torch.zeros(C, N)
        self.terminated = torch.zeros(C, N, dtype=torch.bool)
        self.truncated = torch.zeros(C, N, dtype=torch.bool)
        self.head = 0  # the slot the next vector step goes to
        self.size = 0  # slots filled

    @property
    def transitions(self) -> int:
        """Transitions held: filled slots times N."""
        return self.size * self.num_envs

    def _tensors(self) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        return {
            "obs": self.obs, "next_obs": self.next_obs, "actions": self.actions, "state": self.state,
            "next_state": self.next_state, "rewards": self.rewards, "terminated": self.terminated, "truncated": self.truncated,
        }

    @staticmethod
    def nbytes(obs_sizes: Sequence[int], action_sizes: Sequence[int], state_size: int, transitions: int) -> int:
        """Bytes the tensors of a buffer of `transitions` transitions take (float32, bool flags)."""
        floats = 2 * sum(obs_sizes) + sum(action_sizes) + 2 * state_size + 1
        return transitions * (4 * floats + 2)

    def add(self, obs, state, actions, reward, terminated, truncated, next_obs, next_state) -> None:
        """Write one vector step (N rows of each) at `head`; arrays are NumPy or torch, copied."""
        t = self.head
        for buffer, o in zip(self.obs, obs, strict=True):
            buffer[t].copy_(torch.as_tensor(o))
        for buffer, a in zip(self.actions, actions, strict=True):
            buffer[t].copy_(torch.as_tensor(a))
        for buffer, o in zip(self.next_obs, next_obs, strict=True):
            buffer[t].copy_(torch.as_tensor(o))
        self.state[t].copy_(torch.as_tensor(state))
        self.next_state[t].copy_(torch.as_tensor(next_state))
        self.rewards[t].copy_(torch.as_tensor(reward))
        self.terminated[t].copy_(torch.as_tensor(terminated))
        self.truncated[t].copy_(torch.as_tensor(truncated))
        self.head = (t + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, n_step: int, gamma: float, generator: torch.Generator) -> ReplaySample:
        """`batch_size` transitions drawn uniformly with replacement, with their n-step returns.

        The window of a transition in slot t of env j runs over slots t, t+1, ... of env j for
        at most `n_step` steps, and stops after a step that ended the episode or after the
        latest slot written (that env's next step is not collected yet). Only the sampled rows
        and their windows are read: advanced indexing gathers [B] (or [n, B]) rows.
        """
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        flat = torch.randint(self.size * self.num_envs, (batch_size,), generator=generator)
        slot, env = flat // self.num_envs, flat % self.num_envs
        window = (slot[None] + torch.arange(n_step)[:, None]) % self.capacity  # [n, B]
        latest = (self.head - 1) % self.capacity
        ended = self.terminated[window, env] | self.truncated[window, env] | (window == latest)
        returns, steps = n_step_returns(self.rewards[window, env], ended, gamma)
        last = window.gather(0, (steps - 1)[None])[0]
        discount = (gamma ** steps.double()).float() * ~self.terminated[last, env]
        return ReplaySample(
            state=self.state[slot, env],
            obs=[o[slot, env] for o in self.obs],
            actions=[a[slot, env] for a in self.actions],
            returns=returns,
            discount=discount,
            next_state=self.next_state[last, env],
            next_obs=[o[last, env] for o in self.next_obs],
        )

    # -- checkpoints -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """The filled slots as plain data. A full ring's tensors are stored as they are; a partly
        filled one's slots are copied out (torch.save would write a view's whole storage)."""
        def filled(t: torch.Tensor) -> torch.Tensor:
            return t if self.size == self.capacity else t[: self.size].clone()

        data = {key: [filled(t) for t in value] if isinstance(value, list) else filled(value) for key, value in self._tensors().items()}
        return {"head": self.head, "size": self.size, **data}

    def load_state_dict(self, state: dict) -> None:
        size, head = state["size"], state["head"]
        if not (0 <= size <= self.capacity and 0 <= head < self.capacity):
            raise ValueError(f"replay buffer of {size} slots (head {head}) does not fit this run's capacity of {self.capacity}")
        for key, value in self._tensors().items():
            targets, sources = (value, state[key]) if isinstance(value, list) else ([value], [state[key]])
            for target, source in zip(targets, sources, strict=True):
                target[:size].copy_(source)
        self.head, self.size = head, size
