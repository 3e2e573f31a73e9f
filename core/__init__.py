"""The bottom layer: the error tree and caller identity, imported by every other package.

Nothing here imports from ``server``, ``policies`` or ``connectors``.
"""
