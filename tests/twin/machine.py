"""One instance twin: a copy-on-write root booted by `systemd-nspawn --boot`, a real systemd as
its PID 1, in the prepared network namespace; reboots, power cuts and an ACPI-like shutdown.

The cached root (.stamps/twin-root) is the read-only lower layer of an overlay mount, so every
twin starts from a pristine copy and nothing it writes reaches the cache. The upper layer is the
instance's disk: it survives reboots and power cuts, and is removed when the twin is closed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Optional

from tests.support.ports import wait_until
from tests.twin.netns import NetworkNamespace

# systemd-nspawn's exit status when the container asked to reboot.
REBOOT_STATUS = 133
RELEASE_DIR = "var/lib/optfleet-twin"


class Twin:
    """One EC2 instance's twin; ``close()`` always stops it and unmounts its disk."""

    def __init__(
        self,
        name: str,
        lower: Path,
        workdir: Path,
        netns: NetworkNamespace,
        *,
        instance_id: str,
        hostname: str,
        user_data: str,
        aws_endpoint: str,
    ) -> None:
        self.name = name
        self.instance_id = instance_id
        self.netns = netns
        self.dir = workdir / name
        self.upper = self.dir / "disk"
        self.root = self.dir / "root"
        self._overlay_work = self.dir / "overlay-work"
        for folder in (self.upper, self.root, self._overlay_work):
            folder.mkdir(parents=True)
        subprocess.run(
            [
                "mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir={lower},upperdir={self.upper},workdir={self._overlay_work}",
                str(self.root),
            ],
            check=True, timeout=30,
        )  # fmt: skip
        self.boots: list[float] = []  # host time.time() of each boot
        self.exit_statuses: list[int] = []
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._console: Optional[IO[bytes]] = None
        self._write_first_boot_files(hostname, user_data, aws_endpoint)

    # -- what the instance finds on its disk at first boot -------------------------------------

    def _write_first_boot_files(self, hostname: str, user_data: str, aws_endpoint: str) -> None:
        # The NoCloud seed: cloud-init runs this user data once per instance id, as on EC2.
        seed = self.root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True)
        (seed / "user-data").write_text(user_data)
        (seed / "meta-data").write_text(
            f"instance-id: {self.instance_id}\nlocal-hostname: {hostname}\n"
        )
        # On EC2 the AWS endpoints are the real ones; here every process in the twin (cloud-init,
        # the user data's AWS CLI, the agent, the log shipper) gets moto's, from systemd itself,
        # without touching the user data or the units.
        conf = self.root / "etc/systemd/system.conf.d"
        conf.mkdir(parents=True)
        (conf / "optfleet-twin.conf").write_text(
            f'[Manager]\nDefaultEnvironment="AWS_ENDPOINT_URL={aws_endpoint}"\n'
        )
        (self.root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        (self.root / RELEASE_DIR).mkdir(parents=True)

    # -- power --------------------------------------------------------------------------------

    def boot(self) -> None:
        """Power on (the previous boot must have ended)."""
        if self.running:
            raise RuntimeError(f"twin {self.name} is already running")
        self._console = (self.dir / "console.log").open("ab")
        self.boots.append(time.time())
        self._process = subprocess.Popen(
            [
                "systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                f"--network-namespace-path={self.netns.path}",
                f"--machine={self.name}", "-D", str(self.root), "--boot",
            ],
            stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: self.leader_pid() is not None, 60, f"{self.name}'s systemd")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def leader_pid(self) -> Optional[int]:
        """Host pid of the container's PID 1 (systemd), a child of systemd-nspawn."""
        if not self.running or self._process is None:
            return None
        for task in Path(f"/proc/{self._process.pid}/task").glob("*/children"):
            for pid in task.read_text().split():
                return int(pid)
        return None

    def _wait_exit(self, timeout_s: float) -> int:
        assert self._process is not None
        status = self._process.wait(timeout=timeout_s)
        self.exit_statuses.append(status)
        self._process = None
        if self._console is not None:
            self._console.close()
            self._console = None
        return status

    def reboot(self, timeout_s: float = 120) -> float:
        """`systemctl reboot` inside, then boot again as the hypervisor would; when it was asked."""
        asked = time.time()
        self.run(["systemctl", "reboot"], check=False)
        status = self._wait_exit(timeout_s)
        if status != REBOOT_STATUS:
            raise RuntimeError(f"{self.name}: systemd-nspawn exited {status}, not {REBOOT_STATUS}")
        self.boot()
        return asked

    def power_cut(self, timeout_s: float = 60) -> float:
        """SIGKILL the container's PID 1 (killing systemd-nspawn alone leaves it running)."""
        leader = self.leader_pid()
        assert leader is not None, f"{self.name} is not running"
        cut = time.time()
        os.kill(leader, signal.SIGKILL)
        self._wait_exit(timeout_s)
        return cut

    def shutdown(self, timeout_s: float = 120) -> int:
        """What EC2 does on stop/terminate: an orderly power-off of the OS; nspawn's status."""
        self.run(["systemctl", "poweroff"], check=False)
        return self._wait_exit(timeout_s)

    def close(self) -> None:
        """Stop whatever still runs (SIGKILL to PID 1) and remove the disk."""
        try:
            if self.running:
                leader = self.leader_pid()
                if leader is not None:
                    os.kill(leader, signal.SIGKILL)
                try:
                    self._wait_exit(60)
                except subprocess.TimeoutExpired:
                    assert self._process is not None
                    self._process.kill()
                    self._wait_exit(60)
        finally:
            subprocess.run(["umount", str(self.root)], check=False, timeout=60)
            subprocess.run(["rm", "-rf", str(self.dir)], check=False, timeout=120)

    # -- looking inside -----------------------------------------------------------------------

    def run(
        self, argv: list[str], check: bool = True, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the running twin (all its namespaces, as its root user)."""
        leader = self.leader_pid()
        assert leader is not None, f"{self.name} is not running"
        result = subprocess.run(
            ["nsenter", "-t", str(leader), "-a", *argv],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv} in {self.name}: {result.returncode} {result.stderr}")
        return result

    def journal(self, *args: str) -> list[dict[str, Any]]:
        """The twin's persistent journal read from its disk (works while it is off, too)."""
        result = subprocess.run(
            ["journalctl", "-D", str(self.root / "var/log/journal"), "-o", "json", "--no-pager",
             *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    def agent_events(self, event: Optional[str] = None) -> list[dict[str, Any]]:
        """The agent's JSON event lines, every boot, each with ``_boot`` (the boot id)."""
        found = []
        for entry in self.journal("-u", "optfleet-agent.service"):
            message = entry.get("MESSAGE")
            if not isinstance(message, str) or not message.startswith("{"):
                continue
            try:
                record = json.loads(message)
            except ValueError:
                continue
            if event is None or record.get("event") == event:
                record["_boot"] = entry.get("_BOOT_ID")
                found.append(record)
        return found

    def messages(self, *args: str) -> list[str]:
        """Plain journal messages matching journalctl ``args`` (e.g. ``-u cloud-final``)."""
        return [str(e.get("MESSAGE")) for e in self.journal(*args) if e.get("MESSAGE")]

    def boot_ids(self) -> list[str]:
        """Boot ids in the twin's journal, oldest first."""
        seen: list[str] = []
        for entry in self.journal("--output-fields=_BOOT_ID"):
            boot = entry.get("_BOOT_ID")
            if boot and boot not in seen:
                seen.append(boot)
        return seen

    def release(self, suggestion_id: str) -> None:
        """Let the held evaluation of ``suggestion_id`` finish (tests/twin/workload)."""
        (self.root / RELEASE_DIR / f"release-{suggestion_id}").write_text("go\n")

    def plateau(self, suggestion_id: str) -> None:
        """Make the held evaluation of ``suggestion_id`` report a flat learning curve, which the
        experiment's convergence criterion stops (tests/twin/workload)."""
        (self.root / RELEASE_DIR / f"plateau-{suggestion_id}").write_text("flat\n")

    def wait_event(self, event: str, timeout_s: float, what: str, **match: Any) -> dict[str, Any]:
        """The first agent event named ``event`` whose fields equal ``match``, waiting for it."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [
                e for e in self.agent_events(event) if all(e.get(k) == v for k, v in match.items())
            ]
            return bool(found)

        try:
            wait_until(seen, timeout_s, f"{self.name}: {what}", interval_s=0.5)
        except TimeoutError as exc:
            # The twin's disk goes with it at the end of the test: say what the agent did.
            tail = "\n".join(self.messages("-u", "optfleet-agent.service")[-20:])
            raise TimeoutError(f"{exc}; the agent's last journal lines:\n{tail}") from None
        return found[0]
