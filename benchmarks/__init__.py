"""The benchmark harness (`make bench`): scripts that measure ours against baselines."""
