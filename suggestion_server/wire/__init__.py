"""The wire layer: the SigOpt v1 JSON shapes (pydantic models), errors, body parsing, paging.

Imports nothing else of the server; every other layer may import it.
"""
