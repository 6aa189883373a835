"""Adapters for the parts that can be swapped by settings: embedding model and vector store."""
