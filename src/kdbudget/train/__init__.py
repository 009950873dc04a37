"""Budgeted pretraining: one trainer for every strategy, a budget that every
arm of a comparison shares, a schedule on the fraction of it spent, and
checkpoints that survive a kill."""
