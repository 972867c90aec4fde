"""SigOpt v1 REST client for the agent: one session, timeouts, bounded retries, clear errors.

Only the core wire is used (ids as strings, observation values in list form, ``paging.before``
to walk lists), so the agent works against any SigOpt-v1 server.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple, Union

import requests
from requests.auth import HTTPBasicAuth

from worker_bootstrap.config import is_loopback_url
from worker_bootstrap.retry import Backoff
from worker_bootstrap.token_refresh import TokenRefresher

Json = Dict[str, Any]
# Our server's answer to ``lease_expired_by`` (suggestion_server/services/lapsed_leases.py).
LEASE_FILTER_HEADER = "X-Optfleet-Lease-Filter"


class ApiError(Exception):
    """The server answered with a status the agent does not retry (most 4xx)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path} failed with HTTP {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class ApiUnavailable(Exception):
    """The server could not be reached or kept failing (5xx/429) after the bounded retries."""


class TlsRefused(ApiUnavailable):
    """The server's certificate did not verify (not retried: no retry can fix it)."""


log = logging.getLogger("worker_bootstrap.api_client")
_PLAINTEXT_WARNED: Set[str] = set()


def warn_plaintext_once(api_url: str) -> None:
    """Log once per process and URL that the token crosses the network in clear."""
    if api_url in _PLAINTEXT_WARNED or not api_url.startswith("http://"):
        return
    if not is_loopback_url(api_url):
        _PLAINTEXT_WARNED.add(api_url)
        log.warning(
            "SIGOPT_API_URL=%s is plain http beyond this machine (OPTFLEET_ALLOW_PLAINTEXT): "
            "the API token and all traffic cross the network unencrypted",
            api_url,
        )


def _tls_message(url: str, bundle: Optional[str], exc: requests.exceptions.SSLError) -> str:
    trust = (
        f"the CA in OPTFLEET_CA_BUNDLE={bundle}"
        if bundle
        else "the system's CAs (set OPTFLEET_CA_BUNDLE to the CA that signed it)"
    )
    return f"{url}: the server's TLS certificate does not verify against {trust}: {exc}"


class AmbiguousRequest(Exception):
    """A non-idempotent request failed in a way that leaves open whether the server applied it."""

    def __init__(self, method: str, path: str, cause: str) -> None:
        super().__init__(f"{method} {path} may or may not have been applied: {cause}")
        self.method = method
        self.path = path
        self.cause = cause


def _was_never_sent(exc: requests.RequestException) -> bool:
    """True when the failure happened before the request reached the server (safe to resend)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "Failed to establish a new connection" in text


def is_token_refusal(response: requests.Response) -> bool:
    """401, or the wire's 403 for a token it does not accept (a body with ``token_status``);
    a 403 for a token's scope or a closed run has none and is not about the token's value."""
    if response.status_code == 401:
        return True
    if response.status_code != 403:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "token_status" in body


def _message_of(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason or ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return json.dumps(body)[:300]


class ApiClient:
    """Calls ``<api_url>/v1/...`` with Basic auth ``token:`` like the official client."""

    def __init__(
        self,
        api_url: str,
        token: str,
        session: Optional[requests.Session] = None,
        timeout: Tuple[float, float] = (5.0, 30.0),
        backoff: Optional[Backoff] = None,
        user_agent: str = "optfleet-worker-bootstrap",
        ca_bundle: Optional[str] = None,
        tokens: Optional[TokenRefresher] = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.session = session or requests.Session()
        # Pinned: with a bundle, the server's certificate must chain to that CA and no other.
        self._bundle = ca_bundle
        self._verify: Union[str, bool] = ca_bundle or True
        warn_plaintext_once(self.api_url)
        # Per request, not on the session: the session also talks to IMDS, which must not see it.
        # ``tokens`` re-reads a refused token from its source (token_refresh.py).
        self.tokens = tokens or TokenRefresher(token)
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.calls = 0  # requests actually sent (for the calls-per-evaluation benchmark)
        self.resent_after_refusal = 0  # requests resent with a re-read token
        self.last_headers: Mapping[str, str] = {}  # of the last successful response

    def request(
        self,
        method: str,
        path: str,
        params: Optional[Json] = None,
        body: Optional[Json] = None,
        idempotent: bool = True,
        attempts: Optional[int] = None,
    ) -> Json:
        """Send one request with retries; return the decoded JSON object.

        Connection errors, 429 and 5xx are retried with backoff. For a non-idempotent request
        a failure after the request may have reached the server raises :class:`AmbiguousRequest`
        instead of being retried blindly, so the caller can check what happened first.
        """
        url = f"{self.api_url}/v1{path}"
        last = ""
        tries = attempts if attempts is not None else self.backoff.attempts
        failed = 0  # attempts that failed in a way worth retrying (bounded by ``tries``)
        pause = False
        resent = False  # resent once already after the token was refused
        while failed < tries:
            if pause:
                self.backoff.wait(failed - 1)
            pause = True
            self.calls += 1
            token = self.tokens.current()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    timeout=self.timeout,
                    auth=HTTPBasicAuth(token, ""),
                    headers=self._headers,
                    verify=self._verify,
                )
            except requests.RequestException as exc:
                if isinstance(exc, requests.exceptions.SSLError) and "certificate" in str(exc):
                    raise TlsRefused(_tls_message(url, self._bundle, exc)) from None
                last = f"{type(exc).__name__}: {exc}"
                if not idempotent and not _was_never_sent(exc):
                    raise AmbiguousRequest(method, path, last) from None
                failed += 1
                continue
            status = response.status_code
            self.last_headers = response.headers
            if status == 429:
                last = "HTTP 429 (rate limited)"
                failed += 1
                continue
            if status >= 500:
                last = f"HTTP {status}: {_message_of(response)}"
                if not idempotent:
                    raise AmbiguousRequest(method, path, last)
                failed += 1
                continue
            if status >= 400:
                if is_token_refusal(response):
                    # A refused token was not applied, so even a create is safe to resend.
                    if resent:
                        self.tokens.refused_again(f"{method} {path}")
                    elif self.tokens.renew(token, f"{method} {path}"):
                        resent = True
                        pause = False
                        self.resent_after_refusal += 1
                        continue
                raise ApiError(method, path, status, _message_of(response))
            if status == 204 or not response.content:
                return {}
            try:
                decoded = response.json()
            except ValueError:
                last = f"HTTP {status} with a body that is not JSON"
                if not idempotent:
                    raise AmbiguousRequest(method, path, last) from None
                failed += 1
                continue
            if not isinstance(decoded, dict):
                raise ApiError(method, path, status, "response body is not a JSON object")
            return decoded
        raise ApiUnavailable(f"{method} {url} failed after {tries} attempt(s); last error: {last}")

    # -- the endpoints the agent uses -------------------------------------------------------

    def experiment(self, experiment_id: str) -> Json:
        """GET /experiments/{id} (includes ``progress``)."""
        return self.request("GET", f"/experiments/{experiment_id}")

    def create_suggestion(self, experiment_id: str, metadata: Json) -> Json:
        """POST /experiments/{id}/suggestions (not idempotent)."""
        return self.request(
            "POST",
            f"/experiments/{experiment_id}/suggestions",
            body={"metadata": metadata},
            idempotent=False,
        )

    def suggestion(self, experiment_id: str, suggestion_id: str) -> Json:
        """GET one suggestion."""
        return self.request("GET", f"/experiments/{experiment_id}/suggestions/{suggestion_id}")

    def update_suggestion_metadata(
        self, experiment_id: str, suggestion_id: str, metadata: Json
    ) -> Json:
        """PUT the whole metadata map of a suggestion (the server replaces it)."""
        return self.request(
            "PUT",
            f"/experiments/{experiment_id}/suggestions/{suggestion_id}",
            body={"metadata": metadata},
        )

    def open_suggestions(
        self, experiment_id: str, limit: Optional[int] = None, extra: Optional[Json] = None
    ) -> Iterator[Json]:
        """Every open suggestion, newest first, following ``paging.before`` across all pages."""
        first: Json = {"state": "open", **(extra or {})}
        if limit is not None:
            first["limit"] = limit
        params = dict(first)
        while True:
            page = self.request("GET", f"/experiments/{experiment_id}/suggestions", params=params)
            data = page.get("data") or []
            yield from data
            paging = page.get("paging") or {}
            marker = paging.get("before") if isinstance(paging, dict) else None
            if not data or not marker:
                return
            params = {**first, "before": marker}

    def lapsed_open_suggestions(
        self, experiment_id: str, at: float, limit: Optional[int] = None
    ) -> Tuple[List[Json], bool]:
        """Open suggestions whose lease lapsed by ``at`` or that were interrupted (optfleet's
        ``lease_expired_by`` extension), and whether the server applied the filter: a server
        that ignored it answered with every open suggestion."""
        rows = list(self.open_suggestions(experiment_id, limit, {"lease_expired_by": f"{at:.3f}"}))
        return rows, self.last_headers.get(LEASE_FILTER_HEADER) == "applied"

    def create_observation(self, experiment_id: str, body: Json) -> Json:
        """POST /experiments/{id}/observations (not idempotent)."""
        return self.request(
            "POST", f"/experiments/{experiment_id}/observations", body=body, idempotent=False
        )
