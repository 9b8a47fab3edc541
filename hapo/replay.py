"""The replay buffer of the off-policy algorithms: a ring of preallocated tensors, sampled by index,
with n-step returns that stop at episode ends.

Data flow: every vector step of the N training envs writes one slot (N transitions) at `head`;
once the ring is full the oldest slot is overwritten. A sample draws B (slot, env) pairs
uniformly with replacement and gathers only those rows (and their n-step windows).

When every agent observes the global state followed by its one-hot id (the paper's setting,
`env.obs_mode: global`, whose envs say so with `obs_is_state_plus_id`), the observations are
not stored: a sample rebuilds them from the sampled states, exactly. Ant 4x2's transitions
then take 0.9 KB instead of 4.4 KB.
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
      obs_from_state: every agent's observation is the state followed by its one-hot id among
        the agents (obs_sizes all state_size + number of agents): observations are checked
        against that as they are added, not stored, and rebuilt from the states when sampled.
    """

    def __init__(self, obs_sizes: Sequence[int], action_sizes: Sequence[int], state_size: int, num_envs: int, capacity: int,
                 obs_from_state: bool = False):
        if capacity < 1 or num_envs < 1:
            raise ValueError(f"a replay buffer needs capacity >= 1 and num_envs >= 1, got {capacity} and {num_envs}")
        agents = len(obs_sizes)
        if obs_from_state and any(size != state_size + agents for size in obs_sizes):
            raise ValueError(
                f"obs_from_state needs every observation to be the state ({state_size}) followed by a one-hot id among "
                f"{agents} agents, {state_size + agents} entries; got observation sizes {list(obs_sizes)}"
            )
        C, N = capacity, num_envs
        self.capacity, self.num_envs = C, N
        self.obs_from_state = obs_from_state
        self.state_size = state_size
        self._ids = torch.eye(agents)  # agent i's id: row i
        stored = [] if obs_from_state else obs_sizes
        self.obs = [torch.zeros(C, N, size) for size in stored]
        self.next_obs = [torch.zeros(C, N, size) for size in stored]
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
    def nbytes(obs_sizes: Sequence[int], action_sizes: Sequence[int], state_size: int, transitions: int, obs_from_state: bool = False) -> int:
        """Bytes the tensors of a buffer of `transitions` transitions take (float32, bool flags)."""
        floats = (0 if obs_from_state else 2 * sum(obs_sizes)) + sum(action_sizes) + 2 * state_size + 1
        return transitions * (4 * floats + 2)

    def add(self, obs, state, actions, reward, terminated, truncated, next_obs, next_state) -> None:
        """Write one vector step (N rows of each) at `head`; arrays are NumPy or torch, copied."""
        t = self.head
        if self.obs_from_state:
            self._check_derived(obs, state, "observation")
            self._check_derived(next_obs, next_state, "next observation")
        else:
            for buffer, o in zip(self.obs, obs, strict=True):
                buffer[t].copy_(torch.as_tensor(o))
            for buffer, o in zip(self.next_obs, next_obs, strict=True):
                buffer[t].copy_(torch.as_tensor(o))
        for buffer, a in zip(self.actions, actions, strict=True):
            buffer[t].copy_(torch.as_tensor(a))
        self.state[t].copy_(torch.as_tensor(state))
        self.next_state[t].copy_(torch.as_tensor(next_state))
        self.rewards[t].copy_(torch.as_tensor(reward))
        self.terminated[t].copy_(torch.as_tensor(terminated))
        self.truncated[t].copy_(torch.as_tensor(truncated))
        self.head = (t + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _check_derived(self, obs, state, what: str) -> None:
        state = torch.as_tensor(state)
        for i, o in enumerate(obs):
            o = torch.as_tensor(o)
            if not (torch.equal(o[:, : self.state_size], state) and torch.equal(o[:, self.state_size:], self._ids[i].expand(len(o), -1))):
                raise ValueError(
                    f"agent {i}'s {what} is not the state followed by its one-hot id, which this buffer (obs_from_state) "
                    "rebuilds it from: the env's obs_is_state_plus_id is wrong"
                )

    def _observations(self, stored: list[torch.Tensor], slot: torch.Tensor, env: torch.Tensor, state: torch.Tensor) -> list[torch.Tensor]:
        """Every agent's observations [B, obs_size] of the rows (slot, env), whose states are `state`."""
        if self.obs_from_state:
            return [torch.cat([state, agent_id.expand(len(state), -1)], dim=1) for agent_id in self._ids]
        return [o[slot, env] for o in stored]

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
        state, next_state = self.state[slot, env], self.next_state[last, env]
        return ReplaySample(
            state=state,
            obs=self._observations(self.obs, slot, env, state),
            actions=[a[slot, env] for a in self.actions],
            returns=returns,
            discount=discount,
            next_state=next_state,
            next_obs=self._observations(self.next_obs, last, env, next_state),
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
        """Restore a state_dict. One that stores observations loads into an obs_from_state buffer
        (they are dropped); one without them loads only into an obs_from_state buffer."""
        size, head = state["size"], state["head"]
        if not (0 <= size <= self.capacity and 0 <= head < self.capacity):
            raise ValueError(f"replay buffer of {size} slots (head {head}) does not fit this run's capacity of {self.capacity}")
        if not self.obs_from_state and self.obs and not state["obs"]:
            raise ValueError(
                "the saved replay buffer holds no observations (its agents observed the state plus their id, "
                "obs_from_state); this run's agents observe something else"
            )
        if self.obs_from_state:
            state = {**state, "obs": [], "next_obs": []}
        for key, value in self._tensors().items():
            targets, sources = (value, state[key]) if isinstance(value, list) else ([value], [state[key]])
            for target, source in zip(targets, sources, strict=True):
                target[:size].copy_(source)
        self.head, self.size = head, size
