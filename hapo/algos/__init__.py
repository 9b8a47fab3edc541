"""Per-agent updates, one file per algorithm, behind `ActorUpdate`; the sequential loop they share."""

from hapo.algos.base import ActorUpdate, AgentBatch
from hapo.algos.critic import CriticUpdate
from hapo.algos.happo import HappoUpdate
from hapo.algos.hatrpo import HatrpoUpdate
from hapo.algos.sequential import AgentData, SequentialResult, sequential_update

ALGORITHMS: dict[str, type[ActorUpdate]] = {"happo": HappoUpdate, "hatrpo": HatrpoUpdate}

__all__ = [
    "ALGORITHMS", "ActorUpdate", "AgentBatch", "AgentData", "CriticUpdate", "HappoUpdate", "HatrpoUpdate",
    "SequentialResult", "sequential_update",
]
