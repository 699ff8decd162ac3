"""Registered theorems: importing this package registers every one of them."""
from theory.theorems import relative_attention, convex_output  # noqa: F401,I001  (registry order)
