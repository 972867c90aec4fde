"""An IMDSv2 emulator: a real HTTP server on 127.0.0.1 standing in for one EC2 instance's IMDS.

Follows the token contract (PUT /latest/api/token with a TTL header, 401 without a valid token,
token expiry, 400 for a bad TTL, 403 for a PUT carrying X-Forwarded-For), the identity paths,
``meta-data/tags/instance``, ``meta-data/spot/instance-action``, the rebalance recommendation and,
when a role is given, the instance profile's credentials (``meta-data/iam/security-credentials/``),
which the AWS SDKs and CLI take on EC2.

Besides the AWS paths it serves a small control API under ``/_emulator/`` so another process (the
demo) can drive it: ``POST /_emulator/spot-action`` ``{"action": "terminate", "in_s": 120}``,
``POST /_emulator/rebalance``, ``GET /_emulator/stats``.

Run it alone with ``python -m emulators.imds --instance-id i-0123 [--host H] [--port P]
[--role-name R]``; it prints one JSON line ``{"url": ...}`` and serves until SIGTERM/SIGINT. The
instance twin (tests/twin/) runs it at 169.254.169.254:80 inside a private network namespace.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from emulators.serving import ThreadServed

TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - a header name
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"


@dataclass
class InstanceIdentity:
    """What the emulated instance reports about itself."""

    instance_id: str = "i-0123456789abcdef0"
    instance_type: str = "c6i.large"
    availability_zone: str = "us-east-1a"
    region: str = "us-east-1"
    lifecycle: str = "on-demand"
    ami_id: str = "ami-0abcdef1234567890"
    account_id: str = "123456789012"
    local_hostname: str = "ip-10-0-0-10.ec2.internal"
    local_ipv4: str = "10.0.0.10"

    def document(self) -> dict[str, Any]:
        """The ``dynamic/instance-identity/document`` JSON."""
        return {
            "accountId": self.account_id,
            "architecture": "x86_64",
            "availabilityZone": self.availability_zone,
            "imageId": self.ami_id,
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "pendingTime": "2026-01-01T00:00:00Z",
            "privateIp": self.local_ipv4,
            "region": self.region,
            "version": "2017-09-30",
        }


@dataclass
class RoleCredentials:
    """The instance profile's role and the temporary credentials IMDS hands out for it."""

    role_name: str
    access_key_id: str = "ASIAOPTFLEETEMULATOR"
    secret_access_key: str = "emulated-secret-access-key"  # noqa: S105 - not a secret
    session_token: str = "emulated-session-token"  # noqa: S105 - not a secret
    lifetime_s: float = 6 * 3600

    def document(self, now: float) -> dict[str, str]:
        """``meta-data/iam/security-credentials/ROLE``: what botocore and the CLI parse."""
        return {
            "Code": "Success",
            "LastUpdated": _iso(now),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": _iso(now + self.lifetime_s),
        }


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImdsEmulator(ThreadServed):
    """One simulated instance's metadata service."""

    def __init__(
        self,
        identity: InstanceIdentity | None = None,
        tags: dict[str, str] | None = None,
        token_ttl_max: int = 21600,
        clock: Callable[[], float] = time.time,
        tags_enabled: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        role: RoleCredentials | None = None,
    ) -> None:
        self.identity = identity or InstanceIdentity()
        self.role = role
        self.tags = dict(tags or {})
        self.tags_enabled = tags_enabled
        self.token_ttl_max = token_ttl_max
        self.clock = clock
        self._host = host
        self._port = port
        self._tokens: dict[str, float] = {}
        self._spot: tuple[str, float] | None = None  # (action, when)
        self._rebalance_at: float | None = None
        self._lock = threading.Lock()
        self.request_count = 0
        self.token_requests = 0
        self.paths_read: list[str] = []
        self.authorization_headers_seen = 0  # credentials meant for other services

    # -- control ---------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving on the listen address; returns the base URL (http://HOST:PORT)."""
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        self._serve(_QuietOnDisconnectServer((self._host, self._port), Handler), "imds-emulator")
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        port = int(self._server.server_address[1])
        return f"http://{self._host}:{port}"

    def schedule_spot_action(self, action: str = "terminate", in_s: float = 120) -> None:
        """Make ``spot/instance-action`` report ``action`` at now + ``in_s``."""
        if action not in ("terminate", "stop", "hibernate"):
            raise ValueError(f"action={action!r}: expected terminate, stop or hibernate")
        with self._lock:
            self._spot = (action, self.clock() + in_s)

    def clear_spot_action(self) -> None:
        """Withdraw a scheduled spot action."""
        with self._lock:
            self._spot = None

    def set_rebalance_recommendation(self) -> None:
        """Make ``events/recommendations/rebalance`` report a notice from now on."""
        with self._lock:
            self._rebalance_at = self.clock()

    def expire_tokens(self) -> None:
        """Expire every issued token now (as if their TTL had passed)."""
        with self._lock:
            self._tokens = {token: 0.0 for token in self._tokens}

    # -- request logic (called from handler threads) ---------------------------------------

    def _issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = self.clock() + ttl
            self.token_requests += 1
        return token

    def _token_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and self.clock() < expires

    def _metadata(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body) for a GET under /latest/."""
        ident = self.identity
        now = self.clock()
        plain = "text/plain"
        simple = {
            "meta-data/instance-id": ident.instance_id,
            "meta-data/instance-type": ident.instance_type,
            "meta-data/ami-id": ident.ami_id,
            "meta-data/placement/availability-zone": ident.availability_zone,
            "meta-data/placement/region": ident.region,
            "meta-data/instance-life-cycle": ident.lifecycle,
            "meta-data/local-hostname": ident.local_hostname,
            "meta-data/hostname": ident.local_hostname,
            "meta-data/local-ipv4": ident.local_ipv4,
        }
        path = path.rstrip("/") if path not in ("meta-data/", "dynamic/") else path
        if path in simple:
            return 200, plain, simple[path]
        if path in ("meta-data", "meta-data/"):
            listing = sorted(
                {key.split("/")[1] + ("/" if key.count("/") > 1 else "") for key in simple}
                | {"spot/", "events/", "tags/"}
                | ({"iam/"} if self.role else set())
            )
            return 200, plain, "\n".join(listing)
        if path.startswith("meta-data/iam"):
            return self._iam(path, now)
        if path == "dynamic/instance-identity/document":
            return 200, "application/json", json.dumps(self.identity.document(), indent=2)
        if path.startswith("meta-data/tags/instance"):
            if not self.tags_enabled:
                return 404, plain, "Not Found"
            if path == "meta-data/tags/instance":
                return 200, plain, "\n".join(sorted(self.tags))
            key = path[len("meta-data/tags/instance/") :]
            if key in self.tags:
                return 200, plain, self.tags[key]
            return 404, plain, "Not Found"
        if path == "meta-data/spot/instance-action":
            with self._lock:
                spot = self._spot
            if spot is None:
                return 404, plain, "Not Found"
            action, when = spot
            return 200, "application/json", json.dumps({"action": action, "time": _iso(when)})
        if path == "meta-data/events/recommendations/rebalance":
            with self._lock:
                since = self._rebalance_at
            if since is None or since > now:
                return 404, plain, "Not Found"
            return 200, "application/json", json.dumps({"noticeTime": _iso(since)})
        return 404, plain, "Not Found"

    def _iam(self, path: str, now: float) -> tuple[int, str, str]:
        """The instance profile paths; 404 everywhere when the instance has no role."""
        role = self.role
        if role is None:
            return 404, "text/plain", "Not Found"
        if path == "meta-data/iam/info":
            info = {
                "Code": "Success",
                "LastUpdated": _iso(now),
                "InstanceProfileArn": f"arn:aws:iam::{self.identity.account_id}:"
                f"instance-profile/{role.role_name}",
                "InstanceProfileId": "AIPAOPTFLEETEMULATOR",
            }
            return 200, "application/json", json.dumps(info, indent=2)
        if path == "meta-data/iam/security-credentials":
            return 200, "text/plain", role.role_name
        if path == f"meta-data/iam/security-credentials/{role.role_name}":
            return 200, "application/json", json.dumps(role.document(now), indent=2)
        return 404, "text/plain", "Not Found"

    def stats(self) -> dict[str, Any]:
        """Counters for tests and the demo."""
        with self._lock:
            return {
                "instance_id": self.identity.instance_id,
                "request_count": self.request_count,
                "token_requests": self.token_requests,
                "spot_action": None
                if self._spot is None
                else {"action": self._spot[0], "at": self._spot[1]},
            }


class _QuietOnDisconnectServer(ThreadingHTTPServer):
    """Ignores clients that hang up mid-request (an agent SIGKILLed by a reboot or termination).

    Every other error still gets the standard traceback on stderr.
    """

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    emulator: ImdsEmulator
    server_version = "EC2ws"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and the demo read the agent's logs, not ours

    def _send(
        self,
        status: int,
        body: str,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _count(self) -> None:
        with self.emulator._lock:
            self.emulator.request_count += 1
            if self.headers.get("Authorization") is not None:
                self.emulator.authorization_headers_seen += 1
            self.emulator.paths_read.append(f"{self.command} {self.path}")

    def _drain_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_PUT(self) -> None:
        self._count()
        self._drain_body()
        if self.path != "/latest/api/token":
            self._send(404, "Not Found")
            return
        if self.headers.get("X-Forwarded-For") is not None:
            self._send(403, "Forbidden")
            return
        raw = self.headers.get(TTL_HEADER)
        try:
            ttl = int(raw) if raw is not None else 0
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= self.emulator.token_ttl_max:
            self._send(400, "Bad Request")
            return
        token = self.emulator._issue_token(ttl)
        self._send(200, token, headers={TTL_HEADER: str(ttl)})

    def do_GET(self) -> None:
        self._count()
        if self.path.startswith("/_emulator/"):
            self._control("GET")
            return
        if not self.path.startswith("/latest/"):
            self._send(404, "Not Found")
            return
        if not self.emulator._token_valid(self.headers.get(TOKEN_HEADER)):
            self._send(401, "Unauthorized")
            return
        status, content_type, body = self.emulator._metadata(self.path[len("/latest/") :])
        self._send(status, body, content_type)

    def do_POST(self) -> None:
        self._count()
        if self.path.startswith("/_emulator/"):
            self._control("POST")
            return
        self._drain_body()
        self._send(405, "Method Not Allowed")

    def _control(self, method: str) -> None:
        emulator = self.emulator
        body = self._drain_body() if method == "POST" else b""
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            self._send(400, json.dumps({"error": "body is not JSON"}), "application/json")
            return
        if method == "GET" and self.path == "/_emulator/stats":
            self._send(200, json.dumps(emulator.stats()), "application/json")
        elif method == "POST" and self.path == "/_emulator/spot-action":
            try:
                emulator.schedule_spot_action(
                    str(payload.get("action", "terminate")), float(payload.get("in_s", 120))
                )
            except (TypeError, ValueError) as exc:
                self._send(400, json.dumps({"error": str(exc)}), "application/json")
                return
            self._send(200, json.dumps(emulator.stats()), "application/json")
        elif method == "POST" and self.path == "/_emulator/rebalance":
            emulator.set_rebalance_recommendation()
            self._send(200, "{}", "application/json")
        else:
            self._send(404, json.dumps({"error": "unknown control path"}), "application/json")


def main(argv: list[str] | None = None) -> int:
    """``python -m emulators.imds``: serve one instance's metadata until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m emulators.imds", description=__doc__.splitlines()[0]
    )
    defaults = InstanceIdentity()
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--instance-type", default=defaults.instance_type)
    parser.add_argument("--availability-zone", default=defaults.availability_zone)
    parser.add_argument("--region", default=defaults.region)
    parser.add_argument("--lifecycle", default=defaults.lifecycle, choices=("on-demand", "spot"))
    parser.add_argument("--ami-id", default=defaults.ami_id)
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-tags", action="store_true", help="instance metadata tags disabled")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--role-name", help="serve instance profile credentials for this role (default: none)"
    )
    args = parser.parse_args(argv)
    tags: dict[str, str] = {}
    for pair in args.tag:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--tag {pair!r}: expected KEY=VALUE")
        tags[key] = value
    identity = InstanceIdentity(
        instance_id=args.instance_id,
        instance_type=args.instance_type,
        availability_zone=args.availability_zone,
        region=args.region,
        lifecycle=args.lifecycle,
        ami_id=args.ami_id,
    )
    emulator = ImdsEmulator(
        identity=identity,
        tags=tags,
        tags_enabled=not args.no_tags,
        host=args.host,
        port=args.port,
        role=RoleCredentials(args.role_name) if args.role_name else None,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    url = emulator.start()
    print(json.dumps({"url": url, "identity": asdict(identity)}), flush=True)
    stopped.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
