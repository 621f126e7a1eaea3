"""Training: model kinds, the fit loop, checkpoints, DDP, export to ONNX, quantization, tuning."""
