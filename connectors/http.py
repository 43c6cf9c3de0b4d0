"""The one HTTP client every connector uses: timeouts, retries, rate limits, auth refresh.

* Retries (tenacity): 429, 5xx and connection/timeout errors, with exponential backoff and
  full jitter, honouring ``Retry-After`` (seconds or an HTTP date) when the server sends one.
* Rate limits: after each answer the connector's ``limits`` hook reads the CRM's headers
  (remaining calls and the window's reset); when fewer than ``slow_down_below`` of the window
  remain, the client spreads the rest of the window over the remaining calls, so it slows
  down *before* the limit instead of hitting 429s.
* Auth: a static bearer or API-token header, or OAuth2 refresh: a 401 is answered by one
  refresh and one retry; the new tokens go to ``on_refresh`` (the engine stores them encrypted).
* Secrets never reach a log: requests are logged as method and path only, without query
  strings or headers.
* Destinations: ``guard_requests`` checks every request's URL (token refreshes too) before it
  is sent; the sync engine refuses hosts on the service's own network there.

The transport is injectable, so tests use respx or ``httpx.MockTransport``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CrmError(Exception):
    """A CRM answered with an error that retrying will not fix."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:500]


class CrmAuthError(CrmError):
    """Credentials were refused, even after a refresh."""


class RetryableError(CrmError):
    """A 429/5xx answer or a network failure: worth another attempt."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


@dataclass
class Limits:
    remaining: int | None = None
    limit: int | None = None
    reset_seconds: float | None = None


LimitsHook = Callable[[httpx.Response], Limits]


class Auth:
    """Adds credentials to requests; ``refresh`` returns False when it cannot help."""

    def apply(self, request: httpx.Request) -> None:
        raise NotImplementedError

    def refresh(self, client: httpx.Client) -> bool:
        return False


class BearerAuth(Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.token}"


class HeaderTokenAuth(Auth):
    """An API token in a header (Pipedrive's ``x-api-token``: never in a URL that gets logged)."""

    def __init__(self, header: str, token: str) -> None:
        self.header = header
        self.token = token

    def apply(self, request: httpx.Request) -> None:
        request.headers[self.header] = self.token


class OAuth2RefreshAuth(Auth):
    """OAuth2 with a refresh token; ``on_refresh`` receives the token response to persist."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        refresh_token: str,
        access_token: str | None = None,
        basic_client_auth: bool = False,
        on_refresh: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.access_token = access_token
        self.basic_client_auth = basic_client_auth
        self.on_refresh = on_refresh

    def apply(self, request: httpx.Request) -> None:
        if self.access_token:
            request.headers["Authorization"] = f"Bearer {self.access_token}"

    def refresh(self, client: httpx.Client) -> bool:
        data = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        auth: tuple[str, str] | None = None
        if self.basic_client_auth:
            auth = (self.client_id, self.client_secret or "")
        else:
            data["client_id"] = self.client_id
            if self.client_secret:
                data["client_secret"] = self.client_secret
        try:
            response = client.post(self.token_url, data=data, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except (httpx.TimeoutException, httpx.NetworkError) as exc:
            raise RetryableError(f"token refresh: {type(exc).__name__}") from exc
        if response.status_code in RETRY_STATUSES:
            # The token endpoint being down is an outage to wait out, not refused credentials.
            raise RetryableError(
                f"token refresh: HTTP {response.status_code}",
                status=response.status_code,
                retry_after=retry_after_seconds(response),
            )
        if response.status_code >= 400:
            log.warning("token refresh refused (%s)", response.status_code)
            return False
        payload = response.json()
        token = payload.get("access_token")
        if not token:
            return False
        self.access_token = token
        self.refresh_token = payload.get("refresh_token") or self.refresh_token
        if self.on_refresh is not None:
            self.on_refresh(payload)
        return True


def oauth_from(
    credentials: Mapping[str, Any],
    *,
    token_url: str,
    on_refresh: Callable[[dict[str, Any]], None] | None,
    basic_client_auth: bool = False,
) -> OAuth2RefreshAuth | None:
    """OAuth2 refresh auth when the credentials hold ``client_id`` and ``refresh_token``."""
    if not (credentials.get("refresh_token") and credentials.get("client_id")):
        return None
    return OAuth2RefreshAuth(
        token_url=token_url,
        client_id=str(credentials["client_id"]),
        client_secret=str(credentials.get("client_secret") or "") or None,
        refresh_token=str(credentials["refresh_token"]),
        access_token=credentials.get("access_token") or None,
        basic_client_auth=basic_client_auth,
        on_refresh=on_refresh,
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class CrmClient:
    def __init__(
        self,
        base_url: str,
        auth: Auth | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = httpx.Timeout(30.0, connect=10.0),
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        limits: LimitsHook | None = None,
        slow_down_below: float = 0.1,
        is_auth_error: Callable[[httpx.Response], bool] | None = None,
        is_retryable: Callable[[httpx.Response], bool] | None = None,
        is_final: Callable[[httpx.Response], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={
                "Accept": "application/json",
                "User-Agent": "quotagap/0.1",
                **dict(headers or {}),
            },
        )
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.limits = limits
        self.slow_down_below = slow_down_below
        self.is_auth_error = is_auth_error or (lambda r: r.status_code == 401)
        self.is_retryable = is_retryable or (lambda r: False)
        # e.g. a 429 for an exhausted DAILY budget: retrying within this run cannot help.
        self.is_final = is_final or (lambda r: False)
        self.sleep = sleep
        self.requests = 0

    def guard_requests(self, check: Callable[[str], None]) -> None:
        """Run ``check`` on the URL of every request before it is sent, token refreshes
        included; it raises to refuse the request. The app plugs its address guard in here
        (CRM URLs must not lead stored credentials into its own network). Raise something
        other than an httpx error: a refusal is final, not a network failure to retry."""

        def hook(request: httpx.Request) -> None:
            check(str(request.url))

        hooks = self.http.event_hooks
        self.http.event_hooks = {**hooks, "request": [*hooks.get("request", []), hook]}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CrmClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- retrying

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        # Full jitter: spreads retries of many workers instead of synchronising them.
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not security

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, RetryableError)),
            sleep=self.sleep,
            reraise=True,
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._retrying()(self._send_once, method, url, **kwargs)

    def _send_once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._send_authenticated(method, url, **kwargs)
        status = response.status_code
        if status >= 400 and self.is_final(response):
            raise CrmError(
                f"{method} {_path(url)}: HTTP {status} (not retryable now)",
                status=status,
                body=response.text,
            )
        if status in RETRY_STATUSES or self.is_retryable(response):
            raise RetryableError(
                f"{method} {_path(url)}: HTTP {status}",
                status=status,
                retry_after=retry_after_seconds(response),
            )
        if status >= 400:
            if self.is_auth_error(response):
                raise CrmAuthError(
                    f"{method} {_path(url)}: credentials refused", status=status, body=response.text
                )
            raise CrmError(
                f"{method} {_path(url)}: HTTP {status}", status=status, body=response.text
            )
        self._pace(response)
        return response

    def _send_authenticated(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._send(method, url, **kwargs)
        # One refresh and one retry; a second refusal is final.
        auth = self.auth
        if self.is_auth_error(response) and auth is not None and auth.refresh(self.http):
            response = self._send(method, url, **kwargs)
        return response

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        request = self.http.build_request(method, url, **kwargs)
        if self.auth is not None:
            self.auth.apply(request)
        self.requests += 1
        log.debug("%s %s", method, request.url.path)
        try:
            return self.http.send(request)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise RetryableError(f"{method} {request.url.path}: {type(exc).__name__}") from exc

    def _pace(self, response: httpx.Response) -> None:
        if self.limits is None:
            return
        limits = self.limits(response)
        if limits.remaining is None or limits.limit is None or not limits.reset_seconds:
            return
        if limits.remaining <= max(1, int(limits.limit * self.slow_down_below)):
            # Spread the rest of the window over the calls left instead of running into 429.
            self.sleep(limits.reset_seconds / max(1, limits.remaining))

    # -- JSON helpers

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.json("GET", url, **kwargs)

    def post_json(self, url: str, **kwargs: Any) -> Any:
        return self.json("POST", url, **kwargs)

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """The decoded body; a malformed body is retried like a 5xx."""
        return self._retrying()(lambda: _json(self._send_once(method, url, **kwargs)))


class MalformedResponseError(RetryableError):
    """A 2xx answer that is not JSON: proxies and overloaded CRMs do this; try again."""


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise MalformedResponseError(
            f"{response.request.method} {response.request.url.path}: malformed JSON"
        ) from exc


def _path(url: str) -> str:
    return url.split("?", 1)[0]
