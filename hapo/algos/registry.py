"""The algorithms as combinations of pieces: a per-agent update, an update scheme and a critic kind.

An entry says what an algorithm is, not how a training loop runs it: the on-policy loop
(`hapo.onpolicy.OnPolicyTrainer`) maps `Scheme` to its scheme functions (`ON_POLICY_SCHEMES`) and
`CriticKind` to its value functions (`hapo.algos.critic.Critics`); the off-policy loop
(`hapo.offpolicy.OffPolicyTrainer`) maps the same two to its own (`OFF_POLICY_SCHEMES`: sequential
updates where later agents see the earlier agents' new actions, or simultaneous ones against the
buffer's actions; `hapo.algos.q_critic.QCritic`: a centralised Q, or twin ones).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hapo.algos.base import ActorUpdate, UpdateScheme
from hapo.algos.critic import CriticKind
from hapo.algos.ddpg import DeterministicActorUpdate, OffPolicyScheme
from hapo.algos.haa2c import Haa2cUpdate
from hapo.algos.happo import HappoUpdate
from hapo.algos.hatrpo import HatrpoUpdate
from hapo.algos.sequential import sequential_q_update, sequential_update
from hapo.algos.simultaneous import simultaneous_q_update, simultaneous_update


class Scheme(enum.Enum):
    """How the agents' updates of one iteration relate to each other."""

    # One by one in a random (or fixed) order, each weighted by the compound factor M (off-policy:
    # each against the new actions of the agents updated before it).
    SEQUENTIAL = "sequential"
    # All from the same old joint policy, M = 1 (off-policy: each against the buffer's actions).
    SIMULTANEOUS = "simultaneous"


@dataclass(frozen=True)
class Algorithm:
    actor_update: type[ActorUpdate | DeterministicActorUpdate]  # one instance per distinct actor
    scheme: Scheme
    critic: CriticKind
    summary: str  # one line for --help

    @property
    def off_policy(self) -> bool:
        """Trained from a replay buffer by `hapo.offpolicy.OffPolicyTrainer` (deterministic actors, Q-critics)."""
        return self.critic in (CriticKind.CENTRALISED_Q, CriticKind.TWIN_Q)


ALGORITHMS: dict[str, Algorithm] = {
    "happo": Algorithm(HappoUpdate, Scheme.SEQUENTIAL, CriticKind.CENTRALISED, "clipped surrogate weighted by M"),
    "hatrpo": Algorithm(HatrpoUpdate, Scheme.SEQUENTIAL, CriticKind.CENTRALISED, "one natural-gradient step in a KL trust region, weighted by M"),
    "haa2c": Algorithm(Haa2cUpdate, Scheme.SEQUENTIAL, CriticKind.CENTRALISED, "unclipped importance-weighted policy gradient, weighted by M"),
    "mappo": Algorithm(HappoUpdate, Scheme.SIMULTANEOUS, CriticKind.CENTRALISED, "clipped surrogate, simultaneous updates, one critic V(state)"),
    "ippo": Algorithm(HappoUpdate, Scheme.SIMULTANEOUS, CriticKind.PER_AGENT, "clipped surrogate, simultaneous updates, a critic V_i(o_i) per agent"),
    "maddpg": Algorithm(
        DeterministicActorUpdate, Scheme.SIMULTANEOUS, CriticKind.CENTRALISED_Q,
        "off-policy: deterministic actors, each against the buffer's actions of the others, one Q(state, joint action)",
    ),
    "matd3": Algorithm(
        DeterministicActorUpdate, Scheme.SIMULTANEOUS, CriticKind.TWIN_Q,
        "MADDPG with twin critics, target policy smoothing and delayed actor updates",
    ),
    "haddpg": Algorithm(
        DeterministicActorUpdate, Scheme.SEQUENTIAL, CriticKind.CENTRALISED_Q,
        "off-policy: deterministic actors updated one by one, each against the new actions of those before it, one Q(state, joint action)",
    ),
    "hatd3": Algorithm(
        DeterministicActorUpdate, Scheme.SEQUENTIAL, CriticKind.TWIN_Q,
        "HADDPG with twin critics, target policy smoothing and delayed actor updates",
    ),
}

ON_POLICY_SCHEMES: dict[Scheme, UpdateScheme] = {Scheme.SEQUENTIAL: sequential_update, Scheme.SIMULTANEOUS: simultaneous_update}
OFF_POLICY_SCHEMES: dict[Scheme, OffPolicyScheme] = {Scheme.SEQUENTIAL: sequential_q_update, Scheme.SIMULTANEOUS: simultaneous_q_update}
