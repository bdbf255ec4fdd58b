"""Deployment: the INT8 deploy form of a trained model, its ONNX (QDQ) export, the compact sparse checkpoint and
the CPU runtimes that execute the artifact."""
