"""Per-agent updates, one file per algorithm, behind `ActorUpdate` (and `DeterministicActorUpdate` for
the off-policy family); the update schemes (sequential with the compound factor, simultaneous, and
their off-policy forms) and the critic kinds they combine with (`registry.py`)."""

from hapo.algos.base import ActorUpdate, AgentBatch, AgentData, SchemeResult
from hapo.algos.critic import CriticKind, Critics, CriticUpdate
from hapo.algos.ddpg import DeterministicActorUpdate
from hapo.algos.haa2c import Haa2cUpdate
from hapo.algos.happo import HappoUpdate
from hapo.algos.hatrpo import HatrpoUpdate
from hapo.algos.q_critic import QCritic
from hapo.algos.registry import ALGORITHMS, OFF_POLICY_SCHEMES, ON_POLICY_SCHEMES, Algorithm, Scheme
from hapo.algos.sequential import sequential_q_update, sequential_update
from hapo.algos.simultaneous import simultaneous_q_update, simultaneous_update

__all__ = [
    "ALGORITHMS", "OFF_POLICY_SCHEMES", "ON_POLICY_SCHEMES", "ActorUpdate", "AgentBatch", "AgentData", "Algorithm", "CriticKind",
    "CriticUpdate", "Critics", "DeterministicActorUpdate", "Haa2cUpdate", "HappoUpdate", "HatrpoUpdate", "QCritic", "Scheme",
    "SchemeResult", "sequential_q_update", "sequential_update", "simultaneous_q_update", "simultaneous_update",
]
