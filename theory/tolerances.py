"""Numerical tolerances, stated once.

``TOL_F64 = 1e-10``: the §3 identities are exact in real arithmetic; in float64 (unit roundoff
1.1e-16) a forward pass of the test sizes (d_model <= 64, a few layers, logits O(1..10))
accumulates errors of order 1e-15..1e-13 (``verify`` reports the measured residuals). 1e-10
leaves three orders of magnitude of headroom, while a genuine violation (a rank-1 change of
W_Q, a wrong softmax) gives residuals of order 1e-3..1e-1, eight orders above it.

``TOL_F32 = 1e-4`` for float32 runs (unit roundoff 6e-8, amplified by the same accumulation):
used only where a check explicitly runs in float32 (real weights, the float32 models of the
training experiments).

``VIOLATION = 1e-6``: what a negative control must exceed to count as a violation. It sits four
orders above ``TOL_F64`` so that a control is never "violated" by rounding noise that merely
crosses the tolerance.

``EFFECT_FLOOR = 1e-6``: what a context must change for a check on it to mean something. A §3
identity holds trivially when the context does nothing (a prefix masked out entirely gets zero
attention mass, and the head outputs equal the base run's): a bug in how the prefix is handled
would then go unseen. So every row of a context method must also show, on every drawn trial,
a prefix mass (mean attention of the content queries on the virtual positions, largest over the
layers) and an output displacement (largest change of a head's output at a content query,
prefixed run against the base run) above this floor. It is the size ``VIOLATION`` asks of a
violation: a bug that scales with the context's effect then gives a residual at least four
orders above ``TOL_F64``. Genuine random contexts sit far above it (prefix masses of order
0.1..0.5, displacements of order 0.1..1); a masked-out prefix gives exactly 0 (masked keys get
weight exp(-inf) = 0).
"""

TOL_F64 = 1e-10
TOL_F32 = 1e-4
VIOLATION = 1e-6
EFFECT_FLOOR = 1e-6
