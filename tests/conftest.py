"""Fixtures shared by the unit tests."""

import jaxtyping
import pytest


@pytest.fixture
def without_runtime_typecheck():
    """Turn jaxtyping's runtime checks off for one test.

    The test suite checks every annotated shape of the core (pyproject.toml). Tests of the
    toolkit's own input validation pass deliberately bad arguments and must see the
    ``ToolkitError`` a user sees, who runs without a runtime type checker.
    """
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
