"""Synthetic patient-in-bed recordings with exact ground truth (demo, tests, benchmarks)."""
