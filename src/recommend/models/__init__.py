"""Recommendation models behind one protocol (see ``recommend.models.base``)."""

from recommend.models.base import Factors, History, Recommender

__all__ = ["Factors", "History", "Recommender"]
