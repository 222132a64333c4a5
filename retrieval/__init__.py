"""Encoders, keyword + dense retrieval, fusion and abstention."""
