"""Use cases behind the routes: experiments, suggestions, observations, queued suggestions, best
assignments, leases. Imports ``pool``, ``storage``, ``domain``, ``optimizer.api`` and ``wire``.
"""
