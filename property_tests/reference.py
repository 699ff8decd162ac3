"""An independent reference of the model's first layer with every context method, in plain numpy.

Written from docs/theory.md §1 and docs/conventions.md, not from theory/: loops over heads,
queries and keys, its own softmax, RoPE, ALiBi, sinusoidal codes, norms and masks. The
property tests compare the toolkit's layer-0 attention with it, so a bug that the §3 identities
cannot see (it changes the prefixed and the unprefixed run alike, or only changes "what the
prefix is") still shows up: a scale or temperature applied to some keys only, a mask off by one,
prefixes at the wrong positions, a norm applied to the wrong tensor, keys and values swapped.

Covers softmax attention in the standard and sandwich blocks (their layer-0 attention input is
the same), learned / sinusoidal / RoPE / ALiBi / no positions, pre-/post-/no norm with
LayerNorm or RMSNorm, QK-norm, grouped-query attention, causal and bidirectional masks, sliding
windows, key padding, an embedding norm and token types (zeros).
"""

from __future__ import annotations

import math

import numpy as np


def layer_norm(x, p, kind: str, eps: float):
    x = np.asarray(x, np.float64)
    if kind == "rmsnorm":
        return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * p["w"]
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps) * p["w"] + p["b"]


def sinusoidal(position: int, d_model: int) -> np.ndarray:
    """Vaswani et al.: coordinate 2m is sin(pos / 10000^(2m/d)), 2m+1 its cosine."""
    code = np.zeros(d_model)
    for c in range(d_model):
        m = c // 2
        angle = position / 10000.0 ** (2 * m / d_model)
        code[c] = math.sin(angle) if c % 2 == 0 else math.cos(angle)
    return code


def rope(vec: np.ndarray, position: int, base: float) -> np.ndarray:
    """Rotate each pair (vec[2m], vec[2m+1]) by position * base^(-2m/d_head)."""
    out = np.array(vec, np.float64)
    d = vec.shape[-1]
    for m in range(d // 2):
        angle = position * base ** (-2 * m / d)
        c, s = math.cos(angle), math.sin(angle)
        a, b = vec[2 * m], vec[2 * m + 1]
        out[2 * m], out[2 * m + 1] = a * c - b * s, a * s + b * c
    return out


def alibi_slope(head: int, n_heads: int) -> float:
    """Press et al.: head h (1-based) has slope 2^(-8 h / n_heads)."""
    return 2.0 ** (-8.0 * (head + 1) / n_heads)


def layer0_inputs(arch, params, tokens, context_kind, context, offset: int):
    """The block-0 input of every position (virtual first) and every position's id."""
    embed = {k: np.asarray(v, np.float64) for k, v in params["embed"].items()}
    n = len(tokens)
    n_p = 0 if context is None else virtual_count(context_kind, context)
    positions = list(range(n_p)) + [offset + i for i in range(n)]
    rows = []
    for slot in range(n_p + n):
        if slot < n_p and context_kind == "hard_prompt":
            vec = embed["W_E"][int(np.asarray(context.tokens)[slot])]
        elif slot < n_p and context_kind == "soft_prompt":
            vec = np.asarray(context.embeddings, np.float64)[slot]
        elif slot < n_p:
            vec = np.zeros(arch.d_model)  # prefix / KV-prefix slots: replaced below
        else:
            vec = embed["W_E"][int(tokens[slot - n_p])]
        if arch.positional == "learned":
            vec = vec + embed["W_pos"][positions[slot]]
        elif arch.positional == "sinusoidal":
            vec = vec + sinusoidal(positions[slot], arch.d_model)
        if arch.n_token_types:
            vec = vec + embed["W_type"][0]
        if arch.embed_norm:
            vec = layer_norm(vec, params["ln_embed"], arch.norm_kind, arch.norm_eps)
        rows.append(vec)
    x = np.stack(rows)
    if context_kind == "prefix":
        x[:n_p] = np.asarray(context.states, np.float64)[0]
    return x, positions


def virtual_count(context_kind, context) -> int:
    if context_kind == "hard_prompt":
        return len(np.asarray(context.tokens))
    if context_kind == "soft_prompt":
        return np.asarray(context.embeddings).shape[0]
    if context_kind == "prefix":
        return np.asarray(context.states).shape[1]
    return np.asarray(context.keys).shape[2]


def layer0_attention(
    arch, params, tokens, context_kind=None, context=None, key_mask=None, offset=None
):
    """Layer-0 attention: ``(pattern [H, N, N], z [N, H, d_head], attn_out [N, d_model])``."""
    n_p = 0 if context is None else virtual_count(context_kind, context)
    offset = n_p if offset is None else offset
    x, positions = layer0_inputs(arch, params, tokens, context_kind, context, offset)
    bp = params["blocks"][0]
    attn = {k: np.asarray(v, np.float64) for k, v in bp["attn"].items() if not isinstance(v, dict)}
    h = layer_norm(x, bp["ln1"], arch.norm_kind, arch.norm_eps) if arch.norm == "pre" else x
    N, H, G, dh = x.shape[0], arch.n_heads, arch.kv_heads, arch.d_head
    base = 10000.0 if getattr(arch, "rope_base", None) is None else arch.rope_base
    q = np.zeros((N, H, dh))
    k = np.zeros((N, G, dh))
    v = np.zeros((N, G, dh))
    for i in range(N):
        for hd in range(H):
            q[i, hd] = h[i] @ attn["W_Q"][hd] + attn["b_Q"][hd]
        for g in range(G):
            k[i, g] = h[i] @ attn["W_K"][g] + attn["b_K"][g]
            v[i, g] = h[i] @ attn["W_V"][g] + attn["b_V"][g]
    if arch.qk_norm:
        wq, wk = (np.asarray(bp["attn"][n]["w"], np.float64) for n in ("q_norm", "k_norm"))
        q = q / np.sqrt((q**2).mean(-1, keepdims=True) + arch.norm_eps) * wq
        k = k / np.sqrt((k**2).mean(-1, keepdims=True) + arch.norm_eps) * wk
    if arch.positional == "rope":
        q = np.stack([[rope(q[i, hd], positions[i], base) for hd in range(H)] for i in range(N)])
        k = np.stack([[rope(k[i, g], positions[i], base) for g in range(G)] for i in range(N)])
    if context_kind == "kv_prefix":  # free keys and values, used as given
        keys = np.asarray(context.keys, np.float64)[0]  # [G, n_p, dh]
        values = np.asarray(context.values, np.float64)[0]
        for p in range(n_p):
            k[p], v[p] = keys[:, p], values[:, p]
    visible_key = np.ones(N, bool) if key_mask is None else np.asarray(key_mask, bool)
    pattern = np.zeros((H, N, N))
    z = np.zeros((N, H, dh))
    scale = arch.temperature / math.sqrt(dh)
    for hd in range(H):
        g = hd // (H // G)
        for i in range(N):
            seen = [
                j
                for j in range(N)
                if visible_key[j]
                and (not arch.causal or j <= i)
                and (arch.window is None or abs(i - j) < arch.window)
            ]
            if not seen:
                continue
            logits = []
            for j in seen:
                logit = scale * float(q[i, hd] @ k[j, g])
                if arch.positional == "alibi":
                    logit -= alibi_slope(hd, H) * abs(positions[i] - positions[j])
                logits.append(logit)
            top = max(logits)
            weights = [math.exp(t - top) for t in logits]
            total = sum(weights)
            for j, w in zip(seen, weights, strict=True):
                pattern[hd, i, j] = w / total
                z[i, hd] += (w / total) * v[j, g]
    W_O = np.asarray(bp["attn"]["W_O"], np.float64)
    attn_out = np.einsum("nhd,hdm->nm", z, W_O) + np.asarray(bp["attn"]["b_O"], np.float64)
    return pattern, z, attn_out
