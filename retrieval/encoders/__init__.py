"""Sentence encoders behind one interface (base.py), the cross-lingual pair (pair.py),
micro-batching (batching.py), and the factory that names them (factory.py)."""
