"""Compatibility layers for unmaintained third-party packages.

Each layer is scoped: it patches names only inside the third-party package's own
module namespaces, only for the duration of a ``with`` block, and restores them
on exit. numpy, librosa and every other shared module are never modified.
"""
