"""Evaluation: dataset loaders, metrics, reports."""
