"""Experiments of docs/theory.md §4: prefix-tuning vs fine-tuning vs LoRA on the digit tasks,
trained on the toolkit's own transformer (:func:`theory.model.forward`, float32)."""
