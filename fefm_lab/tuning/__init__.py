"""Hyperparameter tuning on Optuna: search space, shared study, trial reporting, summary."""
