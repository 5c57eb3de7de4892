"""Flowlet Ops task collections, one module per topic.

``tasks.py`` at the repository root composes them into the root collection that ``inv`` loads.
"""
