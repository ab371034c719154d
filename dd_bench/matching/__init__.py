"""The trajectory-matching engine shared by MTT, FTD, DATM and third-party matchers."""

from .buffers import ExpertBuffers, ExpertRecipe, ensure_buffers, train_expert
from .engine import MatchingConfig, TrajectoryMatcher
from .student import FlatModel
from .unroll import match

__all__ = [
    "ExpertBuffers",
    "ExpertRecipe",
    "FlatModel",
    "MatchingConfig",
    "TrajectoryMatcher",
    "ensure_buffers",
    "match",
    "train_expert",
]
