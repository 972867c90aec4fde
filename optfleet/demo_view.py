"""The demo's live view: one row per simulated instance, a progress line and recent events."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from optfleet.demo_report import InstanceCounts

STATE_STYLE = {
    "running": "green",
    "finished": "cyan",
    "rebooting": "yellow",
    "interrupted": "magenta",
    "terminated": "red",
    "pending": "dim",
}


@dataclass
class InstanceLine:
    """What the table shows for one instance at one moment."""

    instance_id: str
    instance_type: str
    lifecycle: str
    state: str
    suggestion: str | None
    step: str
    since: float | None
    counts: InstanceCounts


def render(
    lines: list[InstanceLine],
    header: str,
    events: list[str],
    now: float | None = None,
) -> Group:
    """Build the renderable for ``rich.live.Live``."""
    now = time.monotonic() if now is None else now
    table = Table(
        title=header,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0),  # one space between columns: the table fits 80 columns
    )
    table.add_column("instance", no_wrap=True, min_width=19)
    table.add_column("type", overflow="fold")
    table.add_column("state", overflow="fold")
    table.add_column("sugg", justify="right", overflow="fold")
    table.add_column("step  time", justify="right", overflow="fold")
    for column in ("done", "fail", "res", "adopt"):
        table.add_column(column, justify="right")
    for line in lines:
        progress = ""
        if line.suggestion and line.since is not None:
            progress = f"{line.step} {now - line.since:.1f}s".strip()
        table.add_row(
            line.instance_id,
            f"{line.instance_type}\n{line.lifecycle}",
            Text(line.state, style=STATE_STYLE.get(line.state, "")),
            line.suggestion or "-",
            progress,
            str(line.counts.done),
            Text(str(line.counts.failed), style="red" if line.counts.failed else ""),
            Text(str(line.counts.resumed), style="yellow" if line.counts.resumed else ""),
            Text(str(line.counts.adopted), style="magenta" if line.counts.adopted else ""),
        )
    legend = Text("sugg: open suggestion; res: resumed after a reboot; adopt: taken over", "dim")
    recent = "\n".join(events[-8:]) or "(waiting for the first evaluation)"
    return Group(table, legend, Panel(recent, title="events", title_align="left"))
