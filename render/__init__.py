"""Figures and documents rendered from the toolkit's results (matplotlib; imports at most ``theory``).

``render.inspect``  the per-layer x head heatmaps of ``prefix-theory inspect``
"""
