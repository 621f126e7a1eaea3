"""Batch scoring: any registered version over any table, by the version's own recorded
serving code and ONNX file, the same path its service answers with (docs/scoring.md)."""
