"""Bad input gets a ToolkitError that names what was expected and what was given."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theory import (
    ARCHITECTURES,
    Architecture,
    KVPrefix,
    Prefix,
    SoftPrompt,
    ToolkitError,
    forward,
    get_architecture,
    get_method,
    get_theorem,
    init_params,
)

GPT = ARCHITECTURES["gpt"]

# what users see: the toolkit's own validation, with no runtime type checker in front of it
pytestmark = pytest.mark.usefixtures("without_runtime_typecheck")


@pytest.fixture(scope="module")
def params():
    return init_params(GPT, jax.random.PRNGKey(0))


def test_unknown_names_list_valid_ones():
    with pytest.raises(ToolkitError, match="unknown architecture 'gtp'.*gpt"):
        get_architecture("gtp")
    with pytest.raises(ToolkitError, match="unknown theorem 'nope'.*relative_attention"):
        get_theorem("nope")
    with pytest.raises(ToolkitError, match="unknown method.*prefix"):
        get_method("prefx")


def test_token_errors(params):
    with pytest.raises(
        ToolkitError, match=r"token ids must lie in \[0, 13\).*got ids from 0 to 13"
    ):
        forward(params, GPT, jnp.array([0, 13]))
    with pytest.raises(ToolkitError, match="integer token ids, got dtype float"):
        forward(params, GPT, jnp.array([0.0, 1.0]))
    with pytest.raises(ToolkitError, match=r"1-D array of token ids \[n\], got shape \(2, 2\)"):
        forward(params, GPT, jnp.zeros((2, 2), int))


def test_context_too_long(params):
    with pytest.raises(ToolkitError, match="context too long.*30 virtual \\+ 5 content.*n_ctx=32"):
        forward(params, GPT, jnp.arange(5), SoftPrompt(jnp.zeros((30, GPT.d_model))))


def test_context_shape_errors(params):
    with pytest.raises(
        ToolkitError,
        match=(
            r"prefix states \[n_layers, n_p, d_model\]: "
            r"expected shape \(2, 3, 32\), got \(1, 3, 32\)"
        ),
    ):
        forward(params, GPT, jnp.arange(5), Prefix(jnp.zeros((1, 3, GPT.d_model))))
    with pytest.raises(
        ToolkitError, match="soft prompt embeddings.*expected shape \\(2, 32\\), got \\(2, 31\\)"
    ):
        forward(params, GPT, jnp.arange(5), SoftPrompt(jnp.zeros((2, 31))))
    bad = KVPrefix(jnp.zeros((2, 4, 3, 8)), jnp.zeros((2, 4, 3, 7)))
    with pytest.raises(
        ToolkitError,
        match="KV-prefix values.*expected shape \\(2, 4, 3, 8\\), got \\(2, 4, 3, 7\\)",
    ):
        forward(params, GPT, jnp.arange(5), bad)
    with pytest.raises(
        ToolkitError,
        match="expected None, HardPrompt, SoftPrompt, Prefix, KVPrefix, LatentPrefix or "
        "InitialState, got ndarray",
    ):
        forward(params, GPT, jnp.arange(5), np.zeros(3))
    with pytest.raises(ToolkitError, match="expected finite values, got NaN or inf"):
        forward(params, GPT, jnp.arange(5), SoftPrompt(jnp.full((2, GPT.d_model), jnp.nan)))


def test_attention_mask_must_cover_prefix_and_content(params):
    with pytest.raises(
        ToolkitError, match=r"key mask of shape \(7,\) = n_p \+ n.*got shape \(5,\)"
    ):
        forward(
            params,
            GPT,
            jnp.arange(5),
            SoftPrompt(jnp.zeros((2, GPT.d_model))),
            attention_mask=jnp.ones(5, bool),
        )


def test_parameter_errors(params):
    bad = jax.tree_util.tree_map(lambda x: x, params)
    bad["blocks"][1]["attn"]["W_Q"] = jnp.zeros((4, 32, 7))
    with pytest.raises(
        ToolkitError,
        match=r"parameter blocks.1.attn.W_Q: expected shape \(4, 32, 8\), got \(4, 32, 7\)",
    ):
        forward(bad, GPT, jnp.arange(3))
    bad = jax.tree_util.tree_map(lambda x: x, params)
    bad["unembed"]["W_U"] = bad["unembed"]["W_U"].at[0, 0].set(jnp.inf)
    with pytest.raises(ToolkitError, match="parameter unembed.W_U: expected finite values"):
        forward(bad, GPT, jnp.arange(3))
    bad = jax.tree_util.tree_map(lambda x: x, params)
    del bad["blocks"][0]["ln2"]
    with pytest.raises(ToolkitError, match="missing.*blocks.0.ln2"):
        forward(bad, GPT, jnp.arange(3))
    bad = jax.tree_util.tree_map(lambda x: x, params)
    bad["embed"]["W_E"] = bad["embed"]["W_E"].astype(jnp.int32)
    with pytest.raises(
        ToolkitError, match="embed.W_E: expected a floating-point array, got dtype int32"
    ):
        forward(bad, GPT, jnp.arange(3))


def test_architecture_validation():
    with pytest.raises(ToolkitError, match="unknown positional scheme 'rotary'.*rope"):
        GPT.replace(positional="rotary")
    with pytest.raises(ToolkitError, match="n_kv_heads must divide n_heads=4, got 3"):
        GPT.replace(n_kv_heads=3)
    with pytest.raises(ToolkitError, match="d_model must be a positive int, got 0"):
        GPT.replace(d_model=0)
    with pytest.raises(ToolkitError, match="unknown attention kind"):
        Architecture("x", 1, 1, 4, 4, 0, 3, 8, attention="softmaxx").replace()
