"""Evaluation: test metrics and baselines, the champion re-scored, the promotion gate, plots."""
