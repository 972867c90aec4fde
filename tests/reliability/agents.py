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


def owner_story(agents: list[AgentProcess], suggestion: dict[str, object]) -> list[str]:
    """The owning agent's starts, stops, creates and scans, to tell why a suggestion stayed open."""
    owner = (suggestion.get("metadata") or {}).get("instance_id")  # type: ignore[union-attr]
    wanted = ("agent_started", "agent_finished", "waiting_for_create_in_flight")
    story = []
    for agent in agents:
        for e in agent.events():
            if e.get("instance_id") != owner:
                continue
            if e["event"] in wanted or "listed" in e["event"] or e.get("suggestion_id"):
                story.append(f"{e['ts']} {e['event']} {e.get('suggestion_id') or ''}")
    return story[-40:]


def assert_exactly_once(api: Api, eid: str, agents: list[AgentProcess]) -> Counter[str]:
    """Every suggestion has exactly one observation, none is open, no acknowledged one is lost."""
    per_suggestion = api.observations_per_suggestion(eid)
    every = {str(s["id"]) for s in api.suggestions(eid)}
    assert set(per_suggestion.values()) == {1}, per_suggestion
    left_open = api.open_suggestions(eid)
    assert left_open == [], [
        (s["id"], s.get("created"), s.get("metadata"), owner_story(agents, s)) for s in left_open
    ]
    assert set(per_suggestion) == every, every - set(per_suggestion)
    acknowledged = reported_ids(agents)
    lost = [sid for sid in acknowledged if sid not in per_suggestion]
    assert lost == [], lost
    assert len(acknowledged) == len(set(acknowledged)), Counter(acknowledged).most_common(3)
    for agent in agents:
        assert list((agent.state_dir / "journal").glob("*.json")) == [], agent.state_dir
    return per_suggestion
