"""End-to-end work: one pair (style → register → re-apply → grade), and later batches."""

from .pair import PairResult, register_pair

__all__ = ["PairResult", "register_pair"]
