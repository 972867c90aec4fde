"""Real agent processes for the reliability tests, built on tests/agent/helpers.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from emulators.imds import ImdsEmulator
from tests.agent.helpers import AgentProcess, Api, emulator


def start_agents(
    api_url: str,
    token: str,
    experiment: str,
    root: Path,
    count: int,
    prefix: str,
    env: dict[str, str] | None = None,
) -> tuple[list[AgentProcess], list[ImdsEmulator]]:
    """``count`` started agents, each with its own IMDS emulator and state directory."""
    imdses = [emulator(f"i-0{prefix}{n:0{16 - len(prefix)}d}") for n in range(count)]
    agents = [
        AgentProcess(api_url, token, experiment, imds.url, root / f"agent{n}", env=env)
        for n, imds in enumerate(imdses)
    ]
    for agent in agents:
        agent.start()
    return agents, imdses


def reported_ids(agents: list[AgentProcess]) -> list[str]:
    """Suggestion ids whose observation the server acknowledged to an agent (its ledger)."""
    return [str(e["suggestion_id"]) for a in agents for e in a.events("observation_reported")]


def assert_exactly_once(api: Api, eid: str, agents: list[AgentProcess]) -> Counter[str]:
    """Every suggestion has exactly one observation, none is open, no acknowledged one is lost."""
    per_suggestion = api.observations_per_suggestion(eid)
    every = {str(s["id"]) for s in api.suggestions(eid)}
    assert set(per_suggestion.values()) == {1}, per_suggestion
    left_open = api.open_suggestions(eid)
    assert left_open == [], [(s["id"], s.get("metadata")) for s in left_open]
    assert set(per_suggestion) == every, every - set(per_suggestion)
    acknowledged = reported_ids(agents)
    lost = [sid for sid in acknowledged if sid not in per_suggestion]
    assert lost == [], lost
    assert len(acknowledged) == len(set(acknowledged)), Counter(acknowledged).most_common(3)
    for agent in agents:
        assert list((agent.state_dir / "journal").glob("*.json")) == [], agent.state_dir
    return per_suggestion
