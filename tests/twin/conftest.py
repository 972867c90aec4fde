"""Fixtures for the instance twin: a private network namespace holding moto, the suggestion
server and the IMDS emulator; the fleet stack deployed into moto; twins booted from the cached
root file system. Everything is stopped and removed at the end, also when a test fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.agent.helpers import Api
from tests.infra.support import REPO, VENV_BIN
from tests.twin import services
from tests.twin.fleet import DeployedFleet, aws, deploy_fleet
from tests.twin.machine import Twin
from tests.twin.netns import InNamespace, NetworkNamespace

TWIN_ROOT = REPO / ".stamps" / "twin-root"
# Written by `make twin-root` when this machine cannot build or boot a twin, with the reason.
UNAVAILABLE = REPO / ".stamps" / "twin-unavailable"
TOKEN = "twin-api-token-0123456789"
# SigOpt's convergence criterion: no improvement within 2 checkpoints once 3 were made.
CONVERGED = {"type": "convergence", "name": "flat", "lookback_checkpoints": 2, "min_checkpoints": 3}
TOOLS = ("systemd-nspawn", "ip", "nsenter", "journalctl", "mount")


def unavailable_reason() -> Optional[str]:
    """Why this machine cannot boot a twin at all, or None when it can."""
    if os.geteuid() != 0:
        return "the instance twin needs root (systemd-nspawn, network namespaces, overlay mounts)"
    if UNAVAILABLE.exists():
        return UNAVAILABLE.read_text().strip()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (`make system-deps` installs them with apt)"
    return None


@dataclass
class World:
    """The namespace, its services, the deployed fleet and the twins booted so far."""

    netns: NetworkNamespace
    workdir: Path
    env: dict[str, str]
    server: services.NamespacedProcess
    api: Any  # tests.agent.helpers.Api, called inside the namespace
    fleet: DeployedFleet
    imds: Optional[services.NamespacedProcess] = None
    twins: list[Twin] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def instance(self, name: str, instance_id: str, lifecycle: str, hostname: str) -> Twin:
        """A new twin of ``instance_id`` whose IMDS (at 169.254.169.254) answers for it."""
        if self.imds is not None:
            self.imds.stop()  # one instance's metadata at a time, as each EC2 instance sees
        self.imds = services.imds_emulator(
            self.netns,
            self.workdir,
            self.env,
            instance_id=instance_id,
            lifecycle=lifecycle,
            role_name=self.fleet.role_name,
            tags={"Experiment": self.fleet.experiment_id, "ManagedBy": "optfleet"},
        )
        twin = Twin(
            name,
            TWIN_ROOT,
            self.workdir,
            self.netns,
            instance_id=instance_id,
            hostname=hostname,
            user_data=self.fleet.user_data,
            aws_endpoint=services.MOTO_ENDPOINT,
        )
        self.twins.append(twin)
        return twin

    def aws(self, service: str) -> Any:
        """A moto client whose calls run inside the namespace."""
        return InNamespace(self.netns, self.netns.call(aws, service))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    if not (TWIN_ROOT / "usr/bin/systemd").exists():
        pytest.fail(f"{TWIN_ROOT} is missing: run `make twin-root` (part of `make test`)")
    workdir = tmp_path_factory.mktemp("twin")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    started: list[services.NamespacedProcess] = []
    twins: list[Twin] = []
    world: Optional[World] = None
    with NetworkNamespace() as netns:
        try:
            started.append(services.moto(netns, workdir, env))
            server = services.suggestion_server(netns, workdir, env, TOKEN)
            started.append(server)
            api = InNamespace(netns, Api(services.API_URL, TOKEN))
            experiment_id = api.create_experiment(budget=4, name="instance twin")
            # Scenario 6 ends with a run the server stops (a flat curve converges).
            monitor = {"max_checkpoints": 50, "early_stopping_criteria": [CONVERGED]}
            api.call("PUT", f"/experiments/{experiment_id}", json={"training_monitor": monitor})
            # One instance: a spot-interrupted one is replaced by the group, and the replacement
            # (twin B) is then the only live candidate to adopt its suggestion, as on AWS.
            fleet = deploy_fleet(netns, workdir, experiment_id, TOKEN, fleet_size=1)
            world = World(netns, workdir, env, server, api, fleet, twins=twins)
            yield world
        finally:
            for twin in twins:
                twin.close()
            if world is not None and world.imds is not None:
                world.imds.stop()
            for service in started:
                service.stop()
