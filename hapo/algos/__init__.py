"""Per-agent updates, one file per algorithm, behind `ActorUpdate`; the update schemes (sequential
with the compound factor, simultaneous) and the critic kinds they combine with (`registry.py`)."""

from hapo.algos.base import ActorUpdate, AgentBatch, AgentData, SchemeResult
from hapo.algos.critic import CriticKind, Critics, CriticUpdate
from hapo.algos.haa2c import Haa2cUpdate
from hapo.algos.happo import HappoUpdate
from hapo.algos.hatrpo import HatrpoUpdate
from hapo.algos.registry import ALGORITHMS, ON_POLICY_SCHEMES, Algorithm, Scheme
from hapo.algos.sequential import sequential_update
from hapo.algos.simultaneous import simultaneous_update

__all__ = [
    "ALGORITHMS", "ON_POLICY_SCHEMES", "ActorUpdate", "AgentBatch", "AgentData", "Algorithm", "CriticKind", "CriticUpdate",
    "Critics", "Haa2cUpdate", "HappoUpdate", "HatrpoUpdate", "Scheme", "SchemeResult", "sequential_update",
    "simultaneous_update",
]
