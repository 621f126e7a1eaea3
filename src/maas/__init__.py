"""maas: a workflow-orchestrated MLOps pipeline (Prefect, GX, PyTorch, MLflow, BentoML, DVC)."""

__version__ = "0.1.0"
