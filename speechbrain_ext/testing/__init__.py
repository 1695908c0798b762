"""Tiny random-init models saved in the real hub layouts, for the tests and the demo (no download).

Imports: torch, transformers and speechbrain only; nothing else of ``speechbrain_ext``.
"""
