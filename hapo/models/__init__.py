"""Actors, critics, Q-functions, value normaliser, and the joint policy that acts for all agents at once."""

from hapo.models.networks import MLP, Actor, Critic, DeterministicActor, MovingAverageNormalizer, QNetwork, ValueNormalizer
from hapo.models.policy import JointPolicy

__all__ = [
    "MLP", "Actor", "Critic", "DeterministicActor", "JointPolicy", "MovingAverageNormalizer", "QNetwork", "ValueNormalizer",
]
