"""The core's shape annotations are checked at test time (jaxtyping's import hook with beartype,
configured in pyproject.toml): a wrong-shape argument fails on the annotation."""

import jax.numpy as jnp
import jaxtyping
import pytest

from theory.attention import mask_matrix, scaled_logits
from theory.layers import apply_norm
from theory.registry import ARCHITECTURES

GPT = ARCHITECTURES["gpt"]


def test_the_hook_is_active():
    assert jaxtyping.config.jaxtyping_disable is False
    assert hasattr(scaled_logits, "__wrapped__"), "theory was imported without the jaxtyping hook"


def test_consistent_shapes_pass():
    q = jnp.zeros((5, 4, 8))
    assert scaled_logits(q, jnp.zeros((7, 4, 8)), GPT, 0.0).shape == (4, 5, 7)
    assert mask_matrix(GPT, jnp.ones(6, bool)).shape == (6, 6)


def test_wrong_shapes_fail_on_the_annotation():
    q = jnp.zeros((5, 4, 8))
    with pytest.raises(jaxtyping.TypeCheckError):  # head size differs between q and k
        scaled_logits(q, jnp.zeros((7, 4, 6)), GPT, 0.0)
    with pytest.raises(jaxtyping.TypeCheckError):  # a key mask must be 1-D booleans
        mask_matrix(GPT, jnp.ones((6, 2), bool))
    with pytest.raises(jaxtyping.TypeCheckError):  # integer activations
        apply_norm({"w": jnp.ones(4), "b": jnp.zeros(4)}, jnp.ones((3, 4), int), GPT)
