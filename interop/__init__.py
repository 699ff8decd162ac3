"""Hugging Face checkpoints and PEFT adapters in the toolkit (no torch, no network).

``interop.hf``       load a ``save_pretrained`` folder (GPT-2, LLaMA, BERT) as Architecture + params
``interop.peft``     read and write PEFT adapters (PREFIX_TUNING, PROMPT_TUNING) as toolkit contexts
``interop.checks``   the §3 theorem checks on every layer and head of a loaded model
``interop.inspect``  what an adapter does to each head (prefix mass, bias span, attention change)
``cli.interop``      the commands ``verify --model hf:DIR``, ``inspect`` and ``export`` (in ``cli``)
``interop.oracle``   agreement with transformers + PEFT on the fixtures of ``make oracle-fixtures``
``interop.files``    safetensors and JSON files, read and written with numpy
``interop.family``   the shared mapping helpers
``interop.gpt2``, ``interop.llama``, ``interop.bert``   the families

Conventions, and how PEFT's prefixes relate to the paper's: docs/interop.md.
"""
