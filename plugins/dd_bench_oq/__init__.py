"""Optimal-quantization baseline (placeholder until implemented)."""
