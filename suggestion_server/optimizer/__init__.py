"""The optimizer: search spaces, the study built from rows, samplers (our Gaussian process under
``gp/``, Optuna's TPE and others) and the ``Suggester`` contract in ``api``.

Imports nothing else of the server: it sees data only through ``optimizer.api.RowSource``.
"""
