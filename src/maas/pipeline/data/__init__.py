"""Data: where partitions come from, how rows fall into them, the windows handed between
stages, DVC, and task profiling."""
