"""The suggestion pool and the runtime that fills it: pool entries in the database, their sizing,
the refill lock, and the optimizer runs (in this process or a child process). Imports
``storage``, ``domain``, ``optimizer`` and ``wire``; never ``services`` or ``http``.
"""
