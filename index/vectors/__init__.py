"""The vector index: FAISS indexes keyed by thread (faiss_index.py), per-block indexes
(blocks.py), the saved file with its in-memory layer (layered.py), the scan threads."""
