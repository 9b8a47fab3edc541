"""Actors, critics, Q-functions, value normaliser, and the joint policy that acts for all agents at once."""

from hapo.models.networks import MLP, Actor, AutogradFisher, Critic, DeterministicActor, MovingAverageNormalizer, QNetwork, ValueNormalizer
from hapo.models.policy import JointPolicy

__all__ = [
    "MLP", "Actor", "AutogradFisher", "Critic", "DeterministicActor", "JointPolicy", "MovingAverageNormalizer", "QNetwork", "ValueNormalizer",
]
