"""Test-suite entry point: what an entry point of the toolkit sets up, set up once.

* ``theory.configure_jax()``: float64 and the XLA CPU workaround, as the command line does
  (importing ``theory`` changes nothing by itself);
* plug-ins named in ``$PREFIX_THEORY_PLUGINS`` (so ``pytest property_tests`` checks a user's own
  variants, docs/extending.md).

jaxtyping's import hook (``--jaxtyping-packages`` in pyproject.toml) instruments ``theory``
before this file runs, so every annotated shape of the core is checked at test time.
"""

import theory

theory.configure_jax()
theory.load_env_plugins()
