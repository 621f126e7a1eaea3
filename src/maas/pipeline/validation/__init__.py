"""Validation: the Great Expectations suite of a task, its cache, and drift against the
previous partition."""
