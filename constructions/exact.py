"""Exact mode: the SAME Architecture and params pytree, evaluated in rational / interval arithmetic.

For constructions whose numbers do not fit a float (the two-token packing at
``V >= 12``), this module evaluates :func:`theory.model.forward`'s semantics for the
subset of architectures the constructions use (one or more blocks, ``norm="none"``,
learned positions, softmax attention, causal mask, ReLU MLP of any depth) with

* exact ``Fraction`` s for every linear map (float weights are dyadic rationals, so
  they convert exactly; virtual tokens are given as exact Fractions),
* rigorous ``mpmath`` interval arithmetic for ``exp`` and ``sqrt`` in the softmax
  (outward-rounded at ``prec`` bits), turned back into Fraction intervals,
* affine arithmetic after the attention: every quantity is ``c + sum_i a_i eps_i``
  with exact Fractions and independent unknowns ``eps_i in [-1, 1]`` (one per
  attention output coordinate), so linear maps are exact and large weights of
  correlated units (the digit decoder's ramp pairs) do not blow the enclosure up;
  a ReLU whose argument has a fixed sign is exact, one that straddles 0 is replaced
  by a fresh unknown covering ``[0, hi]``.

Every quantity provably contains the exact value, so ``certain_argmax`` is a proof
that the real-arithmetic model emits that token.
The test suite cross-checks this evaluator against ``theory.model.forward`` in float64.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from constructions.certificates import iv_precision, to_fraction
from theory.architecture import Architecture
from theory.errors import ToolkitError


def _check_arch(arch: Architecture) -> None:
    ok = (
        arch.norm == "none"
        and arch.positional == "learned"
        and arch.attention == "softmax"
        and arch.causal
        and arch.mlp_act == "relu"
        and arch.window is None
        and not arch.qk_norm
        and not arch.embed_norm
        and arch.n_token_types == 0
        and not arch.parallel
        and arch.n_kv_heads in (None, arch.n_heads)
    )
    if not ok:
        raise ToolkitError(
            f"exact mode supports norm='none', learned positions, causal softmax attention and a "
            f"ReLU MLP (the constructions); architecture {arch.name!r} is outside that subset"
        )


class Aff:
    """Affine form ``c + sum_i t[i] eps_i`` (exact Fractions, eps_i in [-1, 1])."""

    __slots__ = ("c", "t")

    def __init__(self, c: Fraction, t: dict | None = None):
        self.c, self.t = c, (t or {})

    def radius(self) -> Fraction:
        return sum((abs(a) for a in self.t.values()), Fraction(0))

    def range(self) -> tuple[Fraction, Fraction]:
        r = self.radius()
        return self.c - r, self.c + r


class _Noise:
    """Source of fresh unknowns eps_i."""

    def __init__(self):
        self.next = 0

    def fresh(self, lo: Fraction, hi: Fraction) -> Aff:
        if lo == hi:
            return Aff(lo)
        self.next += 1
        return Aff((lo + hi) / 2, {self.next: (hi - lo) / 2})


def _relu(form: Aff, noise: _Noise) -> Aff:
    lo, hi = form.range()
    if lo >= 0:
        return form
    if hi <= 0:
        return Aff(Fraction(0))
    return noise.fresh(Fraction(0), hi)


class _Sparse:
    """A weight matrix ``[d_in, d_out]`` (plus bias) as exact nonzero columns."""

    def __init__(self, W, b=None):
        W = np.asarray(W, np.float64)
        self.cols = []
        for j in range(W.shape[1]):
            rows = np.nonzero(W[:, j])[0]
            self.cols.append([(int(i), Fraction(float(W[i, j]))) for i in rows])
        self.b = [
            Fraction(float(x))
            for x in (np.zeros(W.shape[1]) if b is None else np.asarray(b, np.float64))
        ]

    def apply(self, forms: list) -> list:
        out = []
        for j, col in enumerate(self.cols):
            c, t = self.b[j], {}
            for i, w in col:
                f = forms[i]
                c += w * f.c
                for key, a in f.t.items():
                    t[key] = t.get(key, 0) + w * a
            out.append(Aff(c, {key: a for key, a in t.items() if a != 0}))
        return out


def _add(a: list, b: list) -> list:
    out = []
    for x, y in zip(a, b, strict=True):
        t = dict(x.t)
        for key, v in y.t.items():
            t[key] = t.get(key, 0) + v
        out.append(Aff(x.c + y.c, {key: v for key, v in t.items() if v != 0}))
    return out


def _imul(alo, ahi, blo, bhi):
    products = (alo * blo, alo * bhi, ahi * blo, ahi * bhi)
    return min(products), max(products)


def _iv(lo: Fraction, hi: Fraction):
    a = mpmath.iv.mpf(lo.numerator) / lo.denominator
    b = mpmath.iv.mpf(hi.numerator) / hi.denominator
    return mpmath.iv.mpf([a.a, b.b])


class ExactModel:
    """Precomputed exact weights of a construction for repeated evaluation."""

    def __init__(self, params, arch: Architecture, prec: int = 256):
        _check_arch(arch)

        def to_np(x):
            return np.asarray(x, np.float64)

        self.arch, self.prec = arch, prec
        self.W_E = to_np(params["embed"]["W_E"])
        self.W_pos = to_np(params["embed"]["W_pos"])
        self.blocks = []
        for bp in params["blocks"]:
            a = bp["attn"]
            heads = [
                (
                    _Sparse(to_np(a["W_Q"][h]), to_np(a["b_Q"][h])),
                    _Sparse(to_np(a["W_K"][h]), to_np(a["b_K"][h])),
                    _Sparse(to_np(a["W_V"][h]), to_np(a["b_V"][h])),
                    _Sparse(to_np(a["W_O"][h])),
                )
                for h in range(arch.n_heads)
            ]
            b_O = [Fraction(float(x)) for x in to_np(a["b_O"])]
            mlp = None
            if arch.d_mlp:
                m = bp["mlp"]
                layers = [_Sparse(to_np(m["W_in"]), to_np(m["b_in"]))]
                for i in range(arch.mlp_depth - 1):
                    layers.append(_Sparse(to_np(m["W_hidden"][i]), to_np(m["b_hidden"][i])))
                mlp = (layers, _Sparse(to_np(m["W_out"]), to_np(m["b_out"])))
            self.blocks.append((heads, b_O, mlp))
        self.unembed = _Sparse(to_np(params["unembed"]["W_U"]), to_np(params["unembed"]["b_U"]))

    def logits(self, tokens, virtual, only=None) -> tuple[list, list]:
        """Enclosures ``(lo, hi)`` of the logits, each ``[len(only)][d_vocab]`` Fractions.

        ``virtual``: rows of exact Fractions ``[n_p][d_model]`` (soft-prompt embeddings);
        ``only``: content indices whose logits are wanted (default all; the last block
        is evaluated only there, which is all a causal model needs).
        """
        arch = self.arch
        n_p, n = len(virtual), len(tokens)
        N = n_p + n
        if N > arch.n_ctx:
            raise ToolkitError(f"exact mode: {N} positions exceed n_ctx={arch.n_ctx}")
        noise = _Noise()
        x = []
        for p in range(N):
            base = (
                list(virtual[p])
                if p < n_p
                else [Fraction(float(v)) for v in self.W_E[int(tokens[p - n_p])]]
            )
            x.append(
                [Aff(base[i] + Fraction(float(self.W_pos[p, i]))) for i in range(arch.d_model)]
            )
        with iv_precision(self.prec):
            T = Fraction(arch.temperature)
            scale = mpmath.iv.mpf(T.numerator) / T.denominator / mpmath.iv.sqrt(arch.d_head)
            for l, (heads, b_O, mlp) in enumerate(self.blocks):
                last = l == len(self.blocks) - 1
                need = (
                    [n_p + c for c in (range(n) if only is None else only)]
                    if last
                    else list(range(N))
                )
                attn = {i: [Aff(b) for b in b_O] for i in need}
                for W_Q, W_K, W_V, W_O in heads:
                    k = [[f.range() for f in W_K.apply(x[p])] for p in range(N)]
                    v = [[f.range() for f in W_V.apply(x[p])] for p in range(N)]
                    for i in need:
                        q = [f.range() for f in W_Q.apply(x[i])]
                        logits = []
                        for j in range(i + 1):
                            s_lo = s_hi = Fraction(0)
                            for (a_lo, a_hi), (b_lo, b_hi) in zip(q, k[j], strict=True):
                                if (a_lo == a_hi == 0) or (b_lo == b_hi == 0):
                                    continue
                                lo_, hi_ = _imul(a_lo, a_hi, b_lo, b_hi)
                                s_lo, s_hi = s_lo + lo_, s_hi + hi_
                            logits.append(_iv(s_lo, s_hi) * scale)
                        top = max(float(mpmath.mpf(g.b)) for g in logits)
                        exps = [mpmath.iv.exp(g - top) for g in logits]
                        total = sum(exps[1:], exps[0])
                        weights = [
                            (to_fraction((e / total).a), to_fraction((e / total).b)) for e in exps
                        ]
                        z = []
                        for d in range(len(v[0])):
                            z_lo = z_hi = Fraction(0)
                            for j, (w_lo, w_hi) in enumerate(weights):
                                v_lo, v_hi = v[j][d]
                                if v_lo == v_hi == 0:
                                    continue
                                lo_, hi_ = _imul(w_lo, w_hi, v_lo, v_hi)
                                z_lo, z_hi = z_lo + lo_, z_hi + hi_
                            z.append(noise.fresh(z_lo, z_hi))
                        attn[i] = _add(attn[i], W_O.apply(z))
                new_x = list(x)
                for i in need:
                    resid = _add(x[i], attn[i])
                    if mlp is not None:
                        layers, out = mlp
                        h = resid
                        for layer in layers:
                            h = [_relu(f, noise) for f in layer.apply(h)]
                        resid = _add(resid, out.apply(h))
                    new_x[i] = resid
                x = new_x
        out_lo, out_hi = [], []
        for p in need:
            ranges = [f.range() for f in self.unembed.apply(x[p])]
            out_lo.append([r[0] for r in ranges])
            out_hi.append([r[1] for r in ranges])
        return out_lo, out_hi


def certain_argmax(lo, hi) -> int | None:
    """The token whose logit interval lies strictly above every other one, or None."""
    best = max(range(len(lo)), key=lambda t: lo[t])
    if all(lo[best] > hi[t] for t in range(len(lo)) if t != best):
        return best
    return None
