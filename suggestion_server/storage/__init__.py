"""The storage layer: SQLAlchemy models, the ``Store`` (engine and sessions), the queries, API
tokens and migrations. Imports only ``wire`` and the optimizer's row contracts (``optimizer.api``).
"""
