"""Prefect-free pipeline steps: data, validation, training, export, evaluation, stages."""
