"""Corpora, tokenizers, packing and DataModules."""
