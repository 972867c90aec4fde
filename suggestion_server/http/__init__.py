"""The HTTP layer: routes (one module per resource), the hot write path, auth, the web page.

Nothing here but parsing, calling ``services`` and rendering; imports ``services``, ``storage``
(tokens, sessions), ``wire`` and ``domain``, never the optimizer or the pool's internals.
"""
