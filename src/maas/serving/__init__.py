"""Exactly what goes into the serving image: the BentoML service and what it imports.

Imports nothing from the other maas packages (tests/unit/test_architecture.py checks it).
"""
