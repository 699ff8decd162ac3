"""Rendering: figures, the atlas grid, tables and Markdown documents of the core's results.

Nothing here computes a verdict; it turns the core's results (``theory``) into text and images.
matplotlib is imported only by the functions that draw.
"""
