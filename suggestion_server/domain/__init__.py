"""Experiment rules shared by services and the pool: the wire experiment as the optimizer's
search space, and validation of assignments against it. Imports ``wire`` and ``optimizer``.
"""
