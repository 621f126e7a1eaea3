"""MLflow: the tracking store, pipeline runs, the model registry and its server."""
