"""Monitoring: the prediction log read back, drift (Evidently) and realized quality per period,
and the policy that alerts and retrains (docs/monitoring.md)."""
