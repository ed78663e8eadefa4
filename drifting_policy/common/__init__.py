"""Plumbing that the policy side and image_gen share and neither owns.

    io            safetensors files written atomically, JSON metadata, optimiser state without pickle
    metrics_log   metrics.jsonl (+ optional wandb)
    ema           exponential moving average of weights
    schedules     learning-rate multipliers
    stats         confidence intervals (bootstrap, Wilson)
    entry         what console entry points share: threads, hydra base configs, user-error reporting

Imports nothing of policies, data, envs or images (tests/test_import_contract.py keeps it so).
"""
