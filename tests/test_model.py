"""The transformer: shapes of the cache, conventions, temperature, positions, masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theory import ARCHITECTURES, HardPrompt, KVPrefix, Prefix, SoftPrompt, forward, init_params
from theory.hooks import act_name

GPT = ARCHITECTURES["gpt"]


@pytest.fixture(scope="module")
def gpt_params():
    return init_params(GPT, jax.random.PRNGKey(0))


def test_cache_shapes_follow_transformerlens_names(gpt_params):
    tokens = jnp.arange(5) % GPT.d_vocab
    ctx = Prefix(jnp.ones((GPT.n_layers, 3, GPT.d_model)))
    logits, cache = forward(gpt_params, GPT, tokens, ctx)
    N, H, k = 8, GPT.n_heads, GPT.d_head
    assert logits.shape == (5, GPT.d_vocab)
    assert cache[act_name("pattern", 0)].shape == (H, N, N)
    assert cache[act_name("scores", 1)].shape == (H, N, N)
    assert cache[act_name("z", 0)].shape == (N, H, k)
    assert cache[act_name("q", 0)].shape == (N, H, k)
    assert cache[act_name("resid_post", 1)].shape == (N, GPT.d_model)
    np.testing.assert_allclose(cache[act_name("pattern", 1)].sum(-1), 1.0, atol=1e-12)
    # the prefix states are the block inputs of the virtual positions
    np.testing.assert_array_equal(cache[act_name("resid_pre", 1)][:3], 1.0)


def test_causal_mask_and_key_mask(gpt_params):
    tokens = jnp.arange(4)
    mask = jnp.array([True, True, False, True])
    _, cache = forward(gpt_params, GPT, tokens, attention_mask=mask)
    A = np.asarray(cache[act_name("pattern", 0)])
    assert np.all(np.triu(A[0], 1) == 0)  # causal
    assert np.all(A[:, :, 2] == 0)  # masked key
    # a prefix is seen by every content query (virtual positions come first)
    _, cache = forward(gpt_params, GPT, tokens, SoftPrompt(jnp.ones((2, GPT.d_model))))
    assert np.all(np.asarray(cache[act_name("pattern", 0)])[:, 2:, :2] > 0)


def with_temperature(params, T):
    """Every W_Q and b_Q scaled by T: logits T q.k / sqrt(k) (docs/theory.md §1.2)."""
    blocks = [
        dict(bp, attn=dict(bp["attn"], W_Q=bp["attn"]["W_Q"] * T, b_Q=bp["attn"]["b_Q"] * T))
        for bp in params["blocks"]
    ]
    return dict(params, blocks=blocks)


def test_temperature_is_scaling_the_logits(gpt_params):
    """Architecture.temperature = T equals scaling W_Q, b_Q by T (docs/theory.md §1.2)."""
    tokens = jnp.array([1, 5, 2, 7, 3])
    hot = GPT.replace(temperature=2.5)
    logits_T, cache_T = forward(gpt_params, hot, tokens)
    logits_W, cache_W = forward(with_temperature(gpt_params, 2.5), GPT, tokens)
    np.testing.assert_allclose(logits_T, logits_W, atol=1e-12)
    logits_1, _ = forward(gpt_params, GPT, tokens)
    assert np.abs(np.asarray(logits_T - logits_1)).max() > 1e-3  # temperature does matter


def test_logits_scale_with_temperature_exactly(gpt_params):
    tokens = jnp.array([1, 5, 2])
    _, c1 = forward(gpt_params, GPT, tokens)
    _, c3 = forward(gpt_params, GPT.replace(temperature=3.0), tokens)
    np.testing.assert_allclose(
        c3[act_name("scores", 0)], 3.0 * c1[act_name("scores", 0)], atol=1e-12
    )


def test_position_offset_keeps_content_positions(gpt_params):
    """The no-context run at offset n_p sees the same
    layer-0 inputs as the prefixed run's content."""
    tokens = jnp.array([3, 1, 4, 1])
    _, with_ctx = forward(gpt_params, GPT, tokens, HardPrompt(jnp.array([2, 2])))
    _, same = forward(gpt_params, GPT, tokens, position_offset=2)
    _, shifted = forward(gpt_params, GPT, tokens)
    np.testing.assert_allclose(
        with_ctx[act_name("resid_pre", 0)][2:], same[act_name("resid_pre", 0)]
    )
    assert (
        np.abs(
            np.asarray(with_ctx[act_name("resid_pre", 0)][2:] - shifted[act_name("resid_pre", 0)])
        ).max()
        > 0.1
    )


def test_kv_prefix_from_hidden_states_matches_prefix(gpt_params):
    """A hidden-state prefix s is the KV-prefix (W_K LN(s)
    + b_K, W_V LN(s) + b_V) (docs/theory.md §1.7)."""
    tokens = jnp.array([3, 1, 4, 1, 5])
    states = jax.random.normal(jax.random.PRNGKey(1), (GPT.n_layers, 2, GPT.d_model))
    logits_p, cache = forward(gpt_params, GPT, tokens, Prefix(states))
    keys = jnp.stack([jnp.swapaxes(cache[act_name("k", l)][:2], 0, 1) for l in range(GPT.n_layers)])
    values = jnp.stack(
        [jnp.swapaxes(cache[act_name("v", l)][:2], 0, 1) for l in range(GPT.n_layers)]
    )
    logits_kv, _ = forward(gpt_params, GPT, tokens, KVPrefix(keys, values))
    np.testing.assert_allclose(logits_p, logits_kv, atol=1e-12)


def test_forward_is_jittable_and_vmappable(gpt_params):
    tokens = jnp.tile(jnp.arange(6)[None], (3, 1))
    batched = jax.jit(jax.vmap(lambda t: forward(gpt_params, GPT, t, validate=False)[0]))
    out = batched(tokens)
    assert out.shape == (3, 6, GPT.d_vocab)
    np.testing.assert_allclose(out[0], forward(gpt_params, GPT, tokens[0])[0], atol=1e-12)


def test_bert_token_types_and_post_ln():
    bert = ARCHITECTURES["bert"]
    params = init_params(bert, jax.random.PRNGKey(2))
    tokens = jnp.array([1, 2, 3])
    a, _ = forward(params, bert, tokens)
    b, _ = forward(params, bert, tokens, token_types=jnp.array([0, 1, 1]))
    assert np.abs(np.asarray(a - b)).max() > 1e-3
    _, cache = forward(params, bert, tokens)
    resid = np.asarray(cache[act_name("resid_post", 0)])
    # post-LN: the block output is LayerNorm'ed (mean ~ b, not growing)
    assert np.all(np.isfinite(resid))
    A = np.asarray(cache[act_name("pattern", 0)])
    assert np.all(A > 0)  # bidirectional: every key visible


def test_init_is_seeded():
    a = init_params(GPT, jax.random.PRNGKey(7))
    b = init_params(GPT, jax.random.PRNGKey(7))
    c = init_params(GPT, jax.random.PRNGKey(8))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda x, y: bool(jnp.all(x == y)), a, b))
    assert not bool(jnp.all(a["embed"]["W_E"] == c["embed"]["W_E"]))
    assert a["embed"]["W_E"].dtype == jnp.float64
    assert init_params(GPT, jax.random.PRNGKey(7), jnp.float32)["embed"]["W_E"].dtype == jnp.float32


# forward_batch: one context for a batch; the virtual positions run once where causal attention
# keeps them apart from the content. Each context kind and each way a layer reads positions or
# keys: learned / RoPE / ALiBi positions, grouped-query heads with a KV-prefix, a sliding window
# (3) shorter than the sequence, sandwich norms with a prefix, differential attention and
# scalable softmax (its scale counts the visible keys). BERT (the per-sequence path) is in the
# negative control below.
BATCH_CASES = [
    ("gpt", "hard_prompt"),
    ("llama", "kv_prefix"),
    ("mistral", "hard_prompt"),
    ("bloom", "soft_prompt"),
    ("gemma2", "prefix"),
    ("diff", "hard_prompt"),
    ("ssmax", "soft_prompt"),
]


def _batch_case(arch_name, method):
    from theory import get_method

    arch = ARCHITECTURES[arch_name]
    params, context = get_method(method).draw(
        arch, init_params(arch, jax.random.PRNGKey(3)), jax.random.PRNGKey(4), 4
    )
    tokens = jax.random.randint(jax.random.PRNGKey(5), (3, 6), 0, arch.d_vocab)
    return arch, params, context, tokens


def _per_sequence(params, arch, tokens, context):
    return jax.vmap(lambda t: forward(params, arch, t, context, validate=False)[0])(tokens)


@pytest.mark.parametrize("arch_name,method", BATCH_CASES)
def test_forward_batch_equals_the_per_sequence_forward(arch_name, method):
    from theory.model import forward_batch, shares_virtual_positions
    from theory.tolerances import TOL_F64

    arch, params, context, tokens = _batch_case(arch_name, method)
    assert shares_virtual_positions(arch)
    got = forward_batch(params, arch, tokens, context)
    want = _per_sequence(params, arch, tokens, context)
    assert got.shape == want.shape == (3, 6, arch.d_vocab)
    assert float(jnp.max(jnp.abs(got - want))) < TOL_F64
    # the last two positions only: the last block runs the first four for their keys
    last = forward_batch(params, arch, tokens, context, n_out=2)
    assert last.shape == (3, 2, arch.d_vocab)
    assert float(jnp.max(jnp.abs(last - want[:, 4:]))) < TOL_F64


@pytest.mark.parametrize("n_out", [6, 2])
def test_forward_batch_gradients_equal_the_per_sequence_ones(n_out):
    """Training differentiates through the shared virtual positions: their gradient sums
    every sequence's contribution, as the per-sequence forward's does; with ``n_out`` < n the
    positions before the outputs reach the loss only through the last block's keys."""
    from theory.model import forward_batch
    from theory.tolerances import TOL_F64

    arch, params, context, tokens = _batch_case("gpt", "soft_prompt")

    def loss(run):
        return lambda p, c: jnp.sum(jnp.tanh(run(p, arch, tokens, c)))

    got = jax.grad(loss(lambda *a: forward_batch(*a, n_out=n_out, validate=False)), (0, 1))(
        params, context
    )
    want = jax.grad(loss(lambda *a: _per_sequence(*a)[:, 6 - n_out :]), (0, 1))(params, context)
    errors = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), got, want)
    assert max(jax.tree_util.tree_leaves(errors)) < TOL_F64


def test_shared_virtual_positions_are_wrong_without_causal_attention():
    """NEGATIVE CONTROL: under bidirectional attention the virtual positions see the content,
    so running them once per batch changes the logits; the comparison above detects it, and
    ``forward_batch`` does not share them there."""
    from theory.model import _forward_shared, forward_batch
    from theory.tolerances import TOL_F64, VIOLATION

    arch, params, context, tokens = _batch_case("bert", "hard_prompt")
    shared = _forward_shared(params, arch, tokens, context, tokens.shape[1])
    want = _per_sequence(params, arch, tokens, context)
    assert float(jnp.max(jnp.abs(shared - want))) > VIOLATION
    assert float(jnp.max(jnp.abs(forward_batch(params, arch, tokens, context) - want))) < TOL_F64


def test_outputs_read_the_keys_of_the_positions_before_them():
    """NEGATIVE CONTROL for ``n_out``: the outputs' logits depend on the keys and values of the
    content before them (which the last block computes only for that purpose); hiding those
    keys (a key mask on the per-sequence forward) changes them by more than ``VIOLATION``, so
    the comparison above would catch a last block that dropped them."""
    from theory.model import forward_batch
    from theory.tolerances import VIOLATION

    arch, params, context, tokens = _batch_case("gpt", "hard_prompt")
    n_p, keys = 4, jnp.arange(4 + 6)
    key_mask = (keys < n_p) | (keys >= n_p + 4)  # the virtual keys and the outputs' own

    def without_earlier(t):
        return forward(params, arch, t, context, attention_mask=key_mask, validate=False)[0]

    blind = jax.vmap(without_earlier)(tokens)[:, 4:]
    got = forward_batch(params, arch, tokens, context, n_out=2)
    assert float(jnp.max(jnp.abs(got - blind))) > VIOLATION


def test_forward_batch_rejects_bad_input(gpt_params, without_runtime_typecheck):
    from theory import ToolkitError
    from theory.model import forward_batch

    with pytest.raises(
        ToolkitError, match=r"expected a batch of token ids \[B, n\], got shape \(5,\)"
    ):
        forward_batch(gpt_params, GPT, jnp.arange(5))
    with pytest.raises(ToolkitError, match="token ids must lie in"):
        forward_batch(gpt_params, GPT, jnp.full((2, 3), GPT.d_vocab))
    with pytest.raises(ToolkitError, match="context too long"):
        forward_batch(
            gpt_params,
            GPT,
            jnp.zeros((2, GPT.n_ctx), jnp.int32),
            HardPrompt(jnp.zeros(1, jnp.int32)),
        )
    with pytest.raises(ToolkitError, match="expected an Architecture"):
        forward_batch(gpt_params, "gpt", jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(ToolkitError, match="expected at least one content token, got 0"):
        forward_batch(gpt_params, GPT, jnp.zeros((2, 0), jnp.int32))
    for n_out in (0, 4, "2", True):
        with pytest.raises(ToolkitError, match=r"n_out: expected an int from 1 to the sequence"):
            forward_batch(gpt_params, GPT, jnp.zeros((2, 3), jnp.int32), n_out=n_out)
