"""Certificates: a construction is correct for EVERY input, not for sampled ones.

For each construction the correctness condition is derived with sympy
(:func:`derivation`, every step machine-checked by :mod:`theory.symbolic`) and
then evaluated exactly: rationals for the sizes and the floating-point terms,
``mpmath`` interval arithmetic for ``exp(T)``.  A certificate reports

* ``exact``: correct for every input in exact arithmetic (the leakage bound is
  tight for the scalar decoders: below ``T_exact`` some input is decoded wrongly),
* ``certified``: also correct in the requested dtype (adds the floating-point
  error model below; ``T_min`` is the smallest safe temperature),
* the largest safe ``V`` and ``N`` for that dtype.

Scalar decoders (unconditional, conditional): the decoded scalar ``z`` misses its
target ``y/V`` by at most ``L c``, where ``L = p / (e^T + p)`` is the attention
mass leaked away from the intended key (``p`` other visible keys with logit 0,
the intended one with logit ``T``) and ``c`` the worst leak coefficient
(``(V-1)/V`` unconditional, ``(2V-1)/V`` conditional: value and gate both leak).
Decoding is correct iff ``|z - y/V| < 1/(2V)``, so the exact condition is
``e^T > p (c - 1/(2V)) / (1/(2V))`` (``e^T > (2V-3) N`` unconditional).

Floating-point error model (unit roundoff ``u``: 2^-53 float64, 2^-24 float32;
``gamma_n = n u / (1 - n u)``, Higham's bound for n rounded operations):
attention output ``gamma_{2n+8} + 8uT`` per attended scalar (n keys: exp, sum,
division, weighted sum; the logit ``T`` itself carries relative error 3u), the
MLP gate ``2 gamma_4``, the decoder ``2 V gamma_4`` (each logit has error at most
``2 gamma_4``, and a z-margin ``delta`` gives a logit gap ``2 delta / V``).  This
is a standard a-priori model assuming IEEE round-to-nearest and an ``exp``
accurate to a few ulps; it is not a machine-checked proof about XLA's kernels.

Two-token digit decoder: the float path is certified when the leaked attention
mass rounds away (``4 n e^{-T} <= u``: the computed weights are exactly 1 and
e^-T, and 1 + e^-T rounds to 1) and every pre-activation is a sum of terms that
are multiples of one granularity whose absolute values add up to less than
``2^mantissa`` granules (``(k+1) b + 3 <= mantissa bits``, ``b = log2 B``; the
decoder is built so that only BOUNDED units are summed).  Then every partial sum,
in whatever order XLA accumulates it, is exactly representable, and the float
computation IS the ideal one.  (A first design summed unbounded ramp units and
lost exactness under vmapped float32 matmuls; the test suite now checks float32.)  In exact
arithmetic the selected packed number is off by at most ``2(1 + s)/(e^T + 2) < 4/(e^T + 2)`` and
every digit is exact when that is below ``B^{-k}/4``: ``e^T > 16 B^k - 2`` (sufficient, not tight).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp

from constructions.common import check_size, check_temperature
from theory.symbolic import Derivation, Step

MANTISSA = {"float64": 53, "float32": 24}
UNIT_ROUNDOFF = {"float64": Fraction(1, 2**53), "float32": Fraction(1, 2**24)}


def dtype_name(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in MANTISSA:
        from theory.errors import ToolkitError

        raise ToolkitError(f"dtype: expected float32 or float64, got {name}")
    return name


def gamma(n: int, u: Fraction) -> Fraction:
    return n * u / (1 - n * u)


@contextmanager
def iv_precision(prec: int):
    """Temporarily set mpmath's INTERVAL context precision
    (bits); ``mp.workprec`` does not affect it."""
    old = mpmath.iv.prec
    mpmath.iv.prec = max(prec, old)
    try:
        yield
    finally:
        mpmath.iv.prec = old


def exp_interval(T: float, prec: int = 200):
    """Rigorous enclosure ``[lo, hi]`` of ``exp(T)`` as Fractions (mpmath interval arithmetic)."""
    with iv_precision(prec):
        value = mpmath.iv.exp(mpmath.iv.mpf(_mpf_exact(T)))
        return to_fraction(value.a), to_fraction(value.b)


def _mpf_exact(x):
    f = Fraction(x)
    return (
        mpmath.iv.mpf(f.numerator) / f.denominator
        if f.denominator != 1
        else mpmath.iv.mpf(f.numerator)
    )


def to_fraction(x) -> Fraction:
    """Exact Fraction of an mpmath mpf (or an interval endpoint)."""
    x = mpmath.mpf(x) if not isinstance(x, mpmath.mpf) else x
    man, exp = x.man_exp
    return Fraction(man) * (Fraction(2) ** exp)


def log_up(B: Fraction, digits: int = 12) -> float:
    """ln(B) rounded UP in its last printed digit (a safe temperature bound)."""
    if B <= 0:
        return 0.0
    with mpmath.workdps(40):
        value = mpmath.log(mpmath.mpf(B.numerator) / B.denominator)
    return math.ceil(float(value) * 10**digits + 1) / 10**digits


def exp_exceeds(T: float, B: Fraction) -> bool:
    """True when exp(T) > B is PROVED (interval lower bound above B)."""
    if B < 0:
        return True
    lo, _ = exp_interval(T)
    return lo > B


@dataclass(frozen=True)
class Certificate:
    """The outcome of a certificate for one construction, temperature and dtype."""

    construction: str
    V: int
    sizes: dict
    T: float
    dtype: str
    exact: bool  # correct for every input in exact arithmetic
    certified: bool  # ... and in ``dtype`` (error model included)
    T_exact: float  # exact-arithmetic threshold (ln of the bound)
    T_min: float  # smallest safe T in dtype (inf: no T is safe)
    leak_bound: float  # worst decoded-value error from leakage at this T
    margin: float  # decoding margin
    fp_slack: float  # floating-point error budget
    V_max: int | None = None  # largest safe V in dtype (these sizes otherwise)
    N_max: int | None = None  # largest safe N / N0 / digits in dtype
    condition: str = ""
    notes: tuple = field(default=())

    @property
    def verdict(self) -> str:
        return "correct" if self.certified else "not certified"

    def summary(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        lines = [
            f"certificate [{self.construction}] V={self.V}, {sizes}, T={self.T:g}, {self.dtype}: "
            f"{self.verdict.upper()}",
            f"  condition: {self.condition}",
            "  exact arithmetic: "
            f"{'correct for every input' if self.exact else 'NOT correct for every input'} "
            f"(threshold T > {self.T_exact:.6f})",
            f"  leakage bound {self.leak_bound:.3e} + floating-point "
            f"slack {self.fp_slack:.3e} vs margin {self.margin:.3e}",
            f"  smallest safe T in {self.dtype}: {self.T_min:.6f}",
        ]
        if self.V_max is not None:
            value = f">= {self.V_max:.0e} (search cap)" if self.V_max >= CAP else str(self.V_max)
            lines.append(f"  largest safe V in {self.dtype} (these sizes): {value}")
        if self.N_max is not None:
            what = {"two_token": "digits/coordinate", "conditional": "N0"}.get(
                self.construction, "N"
            )
            value = f">= {self.N_max:.0e} (search cap)" if self.N_max >= CAP else str(self.N_max)
            lines.append(f"  largest safe {what} in {self.dtype} (this V): {value}")
        lines.extend("  " + n for n in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------- scalar decoders


def leak_coefficient(kind: str, V: int) -> Fraction:
    """Worst |z - target| per unit of leaked attention mass."""
    return Fraction(V - 1, V) if kind == "unconditional" else Fraction(2 * V - 1, V)


def leak_keys(kind: str, n: int) -> int:
    """p: the largest number of keys besides the intended one that a decoding query sees."""
    return n if kind == "unconditional" else 2 * n - 1


def scalar_fp_slack(kind: str, V: int, n: int, T: float, dtype: str) -> Fraction:
    u = UNIT_ROUNDOFF[dtype]
    n_keys = leak_keys(kind, n) + 1
    attended = 1 if kind == "unconditional" else 2
    att = gamma(2 * n_keys + 8, u) + 8 * u * Fraction(T)
    return attended * att + 2 * gamma(4, u) + 2 * V * gamma(4, u)


def scalar_bounds(kind: str, V: int, n: int, T: float, dtype: str):
    """(B_exact, B_fp, lambda_fp): exp(T) must exceed B_exact (exact) / B_fp (in dtype)."""
    p, c, margin = leak_keys(kind, n), leak_coefficient(kind, V), Fraction(1, 2 * V)
    lam = margin - scalar_fp_slack(kind, V, n, T, dtype)
    B_exact = p * (c - margin) / margin
    B_fp = p * (c - lam) / lam if lam > 0 else None
    return B_exact, B_fp, lam


def _scalar_safe(kind, V, n, dtype) -> bool:
    B_exact, _, _ = scalar_bounds(kind, V, n, 1.0, dtype)
    T = log_up(B_exact) + 2.0
    return scalar_bounds(kind, V, n, T, dtype)[1] is not None


def _largest(pred, lo: int, cap: int) -> int:
    """Largest x in [lo, cap] with pred(x) (pred monotone decreasing); lo-1 if none."""
    if not pred(lo):
        return lo - 1
    hi = lo
    while hi < cap and pred(min(2 * hi, cap)):
        hi = min(2 * hi, cap)
    if hi == cap:
        return cap
    top = min(2 * hi, cap)
    while top - hi > 1:
        mid = (hi + top) // 2
        hi, top = (mid, top) if pred(mid) else (hi, mid)
    return hi


CAP = 10**9


def scalar_certificate(
    kind: str, V: int, n: int, T: float, dtype="float64", with_limits: bool = True
) -> Certificate:
    """Certificate for the unconditional (``n = N``) or conditional (``n = N0``) construction."""
    V = check_size("V (vocabulary size)", V, 2)
    n = check_size("N (sequence length)" if kind == "unconditional" else "N0", n, 1)
    T = check_temperature(T)
    dtype = dtype_name(dtype)
    p, c, margin = leak_keys(kind, n), leak_coefficient(kind, V), Fraction(1, 2 * V)
    B_exact, B_fp, lam = scalar_bounds(kind, V, n, T, dtype)
    exact = exp_exceeds(T, B_exact)
    certified = B_fp is not None and exp_exceeds(T, B_fp)
    e_lo, _ = exp_interval(T)
    leak = float(p * c / (e_lo + p))
    if B_fp is None:
        T_min = math.inf
    else:  # B_fp depends on T only through the tiny 8uT term: iterate once from the bound's own log
        T_min = log_up(B_fp)
        B2 = scalar_bounds(kind, V, n, T_min, dtype)[1]
        T_min = log_up(B2) if B2 is not None else math.inf
    size_name = "N" if kind == "unconditional" else "N0"
    cond = ("e^T > (2V-3) N" if kind == "unconditional" else "e^T > (4V-3)(2 N0 - 1)") + (
        f"  [= {float(B_exact):.6g}; with {dtype} rounding "
        f"> {float(B_fp) if B_fp else math.inf:.6g}]"
    )
    V_max = N_max = None
    if with_limits:
        V_max = _largest(lambda v: _scalar_safe(kind, v, n, dtype), 2, CAP)
        N_max = _largest(lambda m: _scalar_safe(kind, V, m, dtype), 1, CAP)
    return Certificate(
        kind,
        V,
        {size_name: n},
        float(T),
        dtype,
        exact,
        certified,
        log_up(B_exact),
        T_min,
        leak,
        float(margin),
        float(margin - lam),
        V_max,
        N_max,
        cond,
    )


# -------------------------------------------------------------------------- two-token digit decoder


def digit_base(V: int) -> tuple[int, int]:
    """(B, b): the packing base, the power of two B = 2^b >= V."""
    b = max(1, (V - 1).bit_length())
    return 2**b, b


def two_token_bounds(V: int, k: int):
    B, _ = digit_base(V)
    return Fraction(16 * B**k - 2)


def max_digits_float(V: int, dtype: str) -> int:
    """Largest digits-per-coordinate k whose intermediate values are exact in ``dtype``."""
    _, b = digit_base(V)
    return max(0, (MANTISSA[dtype] - 3) // b - 1)


def two_token_certificate(
    V: int, k: int, T: float, dtype="float64", exact_mode: bool = False
) -> Certificate:
    """Certificate for the two-token construction with ``k`` base-B digits per coordinate."""
    V = check_size("V (vocabulary size)", V, 2)
    k = check_size("k (digits per coordinate)", k, 1)
    T = check_temperature(T)
    B, b = digit_base(V)
    B_exact = two_token_bounds(V, k)
    exact = exp_exceeds(T, B_exact)
    n_keys = 3
    e_lo, _ = exp_interval(T)
    leak = float(Fraction(4) / (e_lo + 2))
    notes = []
    if exact_mode:
        dname = "exact"
        certified, T_min, N_max, slack = exact, log_up(B_exact), None, 0.0
        notes.append("exact mode: rational/interval arithmetic, no rounding")
    else:
        dname = dtype_name(dtype)
        u = UNIT_ROUNDOFF[dname]
        bits_ok = (k + 1) * b + 3 <= MANTISSA[dname]
        B_round = 4 * n_keys / u  # exp(T) >= this: leaked mass rounds away
        rounds_away = exp_exceeds(T, B_round)
        certified = bits_ok and rounds_away
        T_min = log_up(B_round) if bits_ok else math.inf
        N_max = max_digits_float(V, dname)
        slack = float(u)
        if not bits_ok:
            notes.append(
                f"{k} digits of {b} bits need {(k + 1) * b + 3} mantissa bits; {dname} has "
                f"{MANTISSA[dname]}: use exact mode or at most {N_max} digits per coordinate"
            )
    cond = f"exact: e^T > 16 B^k - 2 = {float(B_exact):.6g} (B={B}, k={k})"
    if not exact_mode:
        cond += f"; {dname}: (k+1) log2 B + 3 <= {MANTISSA[dname]} and 4*3*e^-T <= u"
    return Certificate(
        "two_token",
        V,
        {"k": k, "B": B},
        float(T),
        dname,
        exact,
        certified,
        log_up(B_exact),
        T_min,
        leak,
        float(Fraction(1, 4 * B**k)),
        slack,
        None,
        N_max,
        cond,
        tuple(notes),
    )


# --------------------------------------------------------------------------- derivations (sympy)

_e = sp.Symbol("e^T", positive=True)  # exp(T)
_p = sp.Symbol("p", positive=True)  # keys other than the intended one
_w = sp.Symbol("w", nonnegative=True)  # V = w + 2 >= 2
_V = sp.Symbol("V", positive=True)
_y, _cbar = sp.symbols("y cbar")
_al, _be = sp.symbols("alpha beta", nonnegative=True)
_d = sp.Symbol("delta", positive=True)
_eps = sp.Symbol("epsilon", nonnegative=True)
_k, _kp, _z = sp.symbols("k k' z")


def m_up(m, V):
    """Largest sum of the other N0 - 1 = m virtual tokens' values in one slot."""
    return m * (V - 1) / V


def derivation(kind: str = "unconditional") -> Derivation:
    """The machine-checked derivation of the correctness condition of a construction."""
    if kind == "two_token":
        return _two_token_derivation()
    V = _w + 2
    A, L = _e / (_e + _p), _p / (_e + _p)
    S, C = sp.symbols("S C", nonnegative=True)
    if kind == "unconditional":
        c = (V - 1) / V
        z = A * _y / V + L * _cbar
        err = L * (_cbar - _y / V)
        worst = {_cbar: 0, _y: V - 1}
        up = {_cbar: (V - 1) / V * (1 - _al), _y: (V - 1) * _be}  # alpha, beta in [0, 1]
        dn = {_cbar: (V - 1) / V * _al, _y: (V - 1) * (1 - _be)}
        what = (
            "z = A y/V + L cbar: the decoding query (position p) puts A "
            "= e^T/(e^T+p) on the virtual token (value y/V) and L = "
            "p/(e^T+p) on p content keys (mean value cbar in [0,(V-1)/V])"
        )
    else:
        c = (2 * V - 1) / V
        # z = val[x] + user[x] - 1, val[x] = A m/V + S/(e+p), user[x] = A + C/(e+p)
        z = A * _y / V + S / (_e + _p) + A + C / (_e + _p) - 1
        err = (S + C - _p * _y / V - _p) / (_e + _p)
        worst = {S: 0, C: 0, _y: V - 1}
        n0, r, sig, kap = sp.symbols("m r sigma kappa", nonnegative=True)  # N0 = m + 1
        up = {S: m_up(n0, V) - sig, C: r - kap, _p: n0 + 1 + r, _y: (V - 1) * _be}
        dn = {_y: (V - 1) * (1 - _be)}
        what = (
            "z = val[x] + user[x] - 1 with val[x] = A m(x)/V + S/(e^T+p) (S >= 0: the "
            "other virtual tokens' values, S <= (N0-1)(V-1)/V) and user[x] = A + C/(e^T+p) "
            "(C: repeats of x among the r earlier response tokens, C <= r); p = N0 + r."
        )
    steps = [
        Step(A + L, 1, "attention weights of the intended key and the p leaking keys sum to 1")
    ]
    steps.append(Step(z - _y / V, err, "decoded scalar minus its target: the leakage error"))
    if kind == "unconditional":
        steps.append(
            Step(
                L * c - err.subs(up),
                L * (V - 1) / V * (_al + _be),
                "upper side, cbar = (V-1)/V (1-alpha), y = (V-1) beta (alpha, beta in [0,1])",
            )
        )
        steps.append(Step(L * c - err.subs(up), 0, "hence z - y/V <= L c", ">="))
    else:
        pos = (_be * (V - 1) * (n0 + r + 1) + (kap + sig) * V + n0 + V) / (V * (_e + n0 + r + 1))
        steps.append(
            Step(
                -err.subs(up),
                pos,
                "upper side: S, C at most their bounds minus sigma, kappa >= 0, "
                "p = N0 + r, target (V-1) beta",
            )
        )
        steps.append(Step(pos, 0, "so the error is never positive", ">"))
        other = ((V - 1) / V * (_e + n0) + r) / (_e + n0 + 1 + r) - 1
        steps.append(
            Step(
                other,
                -((_e + n0) / V + 1) / (_e + n0 + 1 + r),
                "a non-selected slot i != x: val[i] <= (V-1)/V "
                "(e^T + N0 - 1)/(e^T+p), user[i] <= r/(e^T+p)",
            )
        )
        steps.append(
            Step(
                -other,
                0,
                "so ReLU(val[i] + user[i] - 1) = 0 at every temperature: only slot x "
                "reaches the decoder",
                ">",
            )
        )
    steps.append(
        Step(
            L * c + err.subs(dn),
            sp.simplify(L * c + err.subs(dn)),
            "lower side, target y = (V-1)(1-beta), beta in [0,1]",
        )
    )
    steps.append(
        Step(L * c + err.subs(dn), 0, "hence z - target >= -L c, so |z - target| <= L c", ">=")
    )
    steps.append(Step(err.subs(worst), -L * c, "the bound is attained (tight): the worst input"))
    steps.append(
        Step(
            (2 * _k / _V - 1) * _z + sp.Rational(1, 4) - (_k / _V) ** 2,
            (_z - sp.Rational(1, 2)) ** 2 - (_z - _k / _V) ** 2,
            "decoder logit_k = (z-1/2)^2 - (z-k/V)^2: argmax_k is the k/V nearest to z",
        )
    )
    margin = 1 / (2 * V)
    B = _p * (c - margin) / margin
    steps.append(
        Step(
            margin - L * c,
            (_e - B) / (2 * V * (_e + _p)),
            "margin minus worst error = (e^T - B)/(2V(e^T+p)) with B = p (c - 1/(2V)) 2V",
        )
    )
    steps.append(
        Step(
            (margin - L * c).subs(_e, B + _d),
            0,
            "so e^T = B + delta, delta > 0, leaves a positive margin (correct for every input)",
            ">",
        )
    )
    lam = margin - _eps
    steps.append(
        Step(
            lam - L * c,
            (lam * _e - _p * (c - lam)) / (_e + _p),
            "with a floating-point slack epsilon: need e^T "
            "> p (c - lambda)/lambda, lambda = 1/(2V) - eps",
        )
    )
    cond = "(2V-3) p, p = N" if kind == "unconditional" else "(4V-3) p, p = 2 N0 - 1"
    return Derivation(
        title=f"{kind} construction: softmax leakage below the decoding margin  <=>  e^T > {cond}",
        definitions=((_V, V, "vocabulary size, V >= 2"),),
        steps=tuple(steps),
        notes=(
            what,
            "Correct decoding <=> |z - target| < 1/(2V); the bound L c is attained by the worst "
            "input, so the condition is necessary and sufficient in exact arithmetic.",
            "Evaluated exactly by scalar_certificate (rationals, interval exp).",
        ),
    )


def _two_token_derivation() -> Derivation:
    s = sp.Symbol("s", nonnegative=True)
    b = 1 / (_e + 2)
    A = _e * b
    Bk = sp.Symbol("B^k", positive=True)
    q = sp.Symbol("q", nonnegative=True)  # [x1 == x2]
    qc = sp.Symbol("qc", nonnegative=True)  # 1 - [x1' == x2]
    a = A * s + A + q * b - 1
    steps = (
        Step(A + 2 * b, 1, "three keys: the intended one (logit T) and two with logit 0"),
        Step(
            a - s,
            -2 * b * (s + 1) + q * b,
            "selected slot val + user - 1 = A s + A + [x1=x2] b - 1: error -2b(s+1) + [x1=x2] b",
        ),
        Step(
            1 - (A * (1 - s) + (1 - qc) * b),
            A * s + qc * b + b,
            "a row x1' != x1: 1 - (val + u1) with val = A s', "
            "s' = 1 - s < 1, u1 = [x1'=x2] b = (1 - qc) b ...",
        ),
        Step(
            A * s + qc * b + b,
            0,
            "... is positive, so ReLU(val + u1 - 1) = 0: only row x1 survives",
            ">",
        ),
        Step(
            2 * b * (s + 1) - q * b, b * (2 * s + 2 - q), "error magnitude (q in {0,1}, s in [0,1))"
        ),
        Step(4 * b - b * (2 * s + 2 - q), b * (2 - 2 * s + q), "hence |error| < 4/(e^T+2)"),
        Step(
            sp.Rational(1, 4) / Bk - 4 * b,
            (_e + 2 - 16 * Bk) / (4 * Bk * (_e + 2)),
            "digit margin B^-k/4 minus the worst error",
        ),
        Step(
            (sp.Rational(1, 4) / Bk - 4 * b).subs(_e, 16 * Bk - 2 + _d),
            0,
            "e^T > 16 B^k - 2 keeps the error inside the margin of every digit step",
            ">",
        ),
    )
    return Derivation(
        title="two-token construction: packed number recovered within B^-k/4  <=  e^T > 16 B^k - 2",
        steps=steps,
        notes=(
            "Each of the k digit steps B r - d multiplies the error by B "
            "and thresholds sit B^-(k-1-i)/4 away from every attainable "
            "value, so an initial error below B^-k/4 never flips a digit.",
            "float path: exact when (k+1) log2 B + 3 <= "
            "mantissa bits and the leaked mass rounds away.",
        ),
    )
