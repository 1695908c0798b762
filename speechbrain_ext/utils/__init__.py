"""Utilities every layer may use: atomic file writes, the output-folder run lock and local-path checks
(:mod:`~speechbrain_ext.utils.fileio`), and a YAML's plain values read without building anything
(:mod:`~speechbrain_ext.utils.hyperparams`, the one public plain-YAML reader and writer).

Imports: the standard library, torch and ruamel.yaml only; nothing else of ``speechbrain_ext``.
"""
