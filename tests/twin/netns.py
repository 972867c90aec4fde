"""A private network namespace for the twin and its services, never the host's network.

Inside it 169.254.169.254 is ours (an address on the namespace's own loopback), so the IMDS
emulator can stand where EC2's metadata service stands without touching the host's own
169.254.169.254, routes or firewall. Processes join it with ``ip netns exec``; this test process
talks to them from one worker thread that has entered the namespace with setns(2) (a network
namespace is per thread, so the rest of the test process stays on the host's network).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

IMDS_ADDRESS = "169.254.169.254"
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _enter(path: str) -> None:
    """setns(2) the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class NetworkNamespace:
    """``ip netns add`` on enter, ``ip netns del`` on exit (also when the test fails)."""

    def __init__(self, prefix: str = "optfleet-twin") -> None:
        self.name = f"{prefix}-{secrets.token_hex(3)}"
        self.path = f"/run/netns/{self.name}"
        self._thread: Optional[ThreadPoolExecutor] = None

    def __enter__(self) -> NetworkNamespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True, timeout=30)
        try:
            self.run(["ip", "link", "set", "lo", "up"])
            self.run(["ip", "addr", "add", f"{IMDS_ADDRESS}/32", "dev", "lo"])
            self._thread = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=self.name,
                initializer=_enter,
                initargs=(self.path,),
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=30)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` prefixed to run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace; raises with its output when it fails."""
        result = subprocess.run(
            self.command(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function`` on the thread inside the namespace and return its result."""
        if self._thread is None:
            raise RuntimeError(f"network namespace {self.name} is not set up")
        return self._thread.submit(function, *args, **kwargs).result()


class InNamespace:
    """Proxy whose method calls run inside the namespace (for HTTP and boto3 clients)."""

    def __init__(self, netns: NetworkNamespace, target: Any) -> None:
        self._netns = netns
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self._netns.call(attribute, *args, **kwargs)
