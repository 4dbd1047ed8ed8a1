"""memrl-eval: a runtime-learning benchmark of the memory server (docs/EVALUATION.md)."""
