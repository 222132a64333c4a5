"""The `unsource` command line: the root app (root.py), one module per command group,
one output convention (output.py)."""
