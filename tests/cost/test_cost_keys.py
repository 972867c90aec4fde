"""The server names the cost keys it reads itself (it may not import the agent): the same names."""

from __future__ import annotations

from suggestion_server.wire import cost_keys as server_keys
from suggestion_server.wire import stopping_keys
from worker_bootstrap import progress_keys
from worker_bootstrap.cost import keys as agent_keys


def test_the_server_reads_the_keys_the_agent_writes() -> None:
    names = [name for name in vars(server_keys) if name.isupper() and name != "SPLIT_KEYS"]
    assert names  # the check compares something
    for name in names:
        assert getattr(server_keys, name) == getattr(agent_keys, name), name
    assert set(server_keys.SPLIT_KEYS) <= set(agent_keys.OBSERVATION_KEYS)


def test_the_server_reads_the_stopping_keys_the_agent_writes() -> None:
    names = [name for name in vars(stopping_keys) if name.isupper() and name != "STOPPING_KEYS"]
    assert len(names) == 3
    for name in names:
        assert getattr(stopping_keys, name) == getattr(progress_keys, name), name
    assert set(stopping_keys.STOPPING_KEYS) <= set(progress_keys.OBSERVATION_KEYS)
