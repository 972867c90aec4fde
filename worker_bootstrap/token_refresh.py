"""The API token the agent sends, re-read from where it came from when the server refuses it.

A rotated token stays valid on the server for a grace period; an agent that still holds the
previous value after that gets a refusal (401, or the wire's 403 with ``token_status``). It then
re-reads the token once from its source (the Secrets Manager secret named by
OPTFLEET_TOKEN_SECRET) and resends that request once. Bounded:

- one re-read per refused value: requests in flight with the same value that are refused
  while or after it was re-read are resent with the new value without another read, and when
  the source still holds the refused value (a stale secret) nothing reads it again;
- requests wait while a re-read is under way, so they go out with the value it finds;
- a request refused again after its resend fails as before (the caller's fatal error).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Set

# EventLog.event: (event, suggestion_id=None, **fields). Events: ``token_reread`` (the source
# was read again), ``token_retry`` (a refused request is resent), ``token_refused`` (fatal).
Notify = Callable[..., None]


def _ignore(event: str, suggestion_id: Optional[str] = None, **fields: Any) -> None:
    del event, suggestion_id, fields


class TokenRefresher:
    """Holds the current token; ``renew(refused)`` after the server refused ``refused``.

    ``source`` returns the token as its origin holds it now (None: a value fixed for the
    process, e.g. SIGOPT_API_TOKEN, which nothing can re-read); ``on_new`` is told each new
    value (to scrub it from logs); ``notify`` gets the log events."""

    def __init__(
        self,
        token: str,
        source: Optional[Callable[[], str]] = None,
        source_name: str = "SIGOPT_API_TOKEN",
        on_new: Optional[Callable[[str], None]] = None,
        notify: Optional[Notify] = None,
    ) -> None:
        self._token = token
        self._source = source
        self.source_name = source_name
        self._on_new = on_new
        self._notify = notify or _ignore
        self._lock = threading.Lock()
        self._reread_for: Set[str] = set()
        self.rereads = 0  # how often the source was read again (for tests and the summary)

    def current(self) -> str:
        """The token to send (waits while a re-read is under way)."""
        with self._lock:
            return self._token

    def renew(self, refused: str, request: str) -> bool:
        """True when ``request``, refused with the token ``refused``, may be resent once with
        :meth:`current`: another request already re-read a new value, or this one does now."""
        with self._lock:
            if self._token != refused:
                self._notify("token_retry", request=request)
                return True
            if self._source is None:
                self._refused(request, f"{self.source_name} is fixed for this process")
                return False
            if refused in self._reread_for:
                self._refused(request, f"{self.source_name} was re-read already for this value")
                return False
            self._reread_for.add(refused)
            try:
                found = self._source()
            except Exception as exc:  # the caller's refusal stands; say why no new value came
                self._refused(request, f"re-reading {self.source_name} failed: {exc}")
                return False
            self.rereads += 1
            changed = found != refused
            self._notify("token_reread", source=self.source_name, request=request, changed=changed)
            if not changed:
                self._refused(request, f"{self.source_name} still holds the refused token")
                return False
            if self._on_new is not None:
                self._on_new(found)
            self._token = found
            self._notify("token_retry", request=request)
            return True

    def refused_again(self, request: str) -> None:
        """Log that ``request``, resent with a re-read token, was refused again (fatal)."""
        self._refused(request, f"refused again with the token re-read from {self.source_name}")

    def _refused(self, request: str, why: str) -> None:
        self._notify(
            "token_refused",
            request=request,
            reason=why,
            action="failing as before: rotate the token (optfleet token rotate) and update "
            f"{self.source_name}, or check the token's scope",
        )
