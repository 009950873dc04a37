"""kdbudget: knowledge distillation vs. pretraining from scratch under a fixed compute budget."""

__version__ = "0.1.0"
