"""Actors, critic, value normaliser, and the joint policy that acts for all agents at once."""

from hapo.models.networks import MLP, Actor, Critic, ValueNormalizer
from hapo.models.policy import JointPolicy

__all__ = ["MLP", "Actor", "Critic", "JointPolicy", "ValueNormalizer"]
