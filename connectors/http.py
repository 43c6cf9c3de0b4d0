"""The one HTTP client every connector uses: timeouts, retries, rate limits, auth refresh.

* Retries (tenacity): 429, 5xx and connection/timeout errors, with exponential backoff and
  full jitter, honouring ``Retry-After`` (seconds or an HTTP date) when the server sends one.
* Rate limits: after each answer the connector's ``limits`` hook reads the CRM's headers
  (remaining calls and the window's reset); when fewer than ``slow_down_below`` of the window
  remain, the client spreads the rest of the window over the remaining calls, so it slows
  down *before* the limit instead of hitting 429s.
* Auth: ``httpx.Auth`` flows: a static bearer or API-token header, or OAuth2 refresh: a 401
  is answered by one refresh and one retry; the new tokens go to ``on_refresh`` (the engine
  stores them encrypted). ``build_client`` builds every CRM's client from its ``CrmWire``.
* Secrets never reach a log: requests are logged as method and path only, without query
  strings or headers.
* Destinations: ``guard_requests`` checks every request's URL (token refreshes too) before it
  is sent; the sync engine refuses hosts on the service's own network there.

The transport is injectable, so tests use respx or ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import random
import time
from collections.abc import Callable, Generator, Mapping
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
# The longest a call waits to spread a nearly spent budget over its window (Salesforce's is a
# rolling 24 hours: with one call left, the even spread would be a day).
MAX_PACE_WAIT = 30.0


class CrmError(Exception):
    """A CRM answered with an error that retrying will not fix."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:500]


class CrmAuthError(CrmError):
    """Credentials were refused, even after a refresh."""


class BudgetPaused(CrmError):
    """The account's API budget for the day is spent, or so nearly that the calls left would
    each have to wait longer than :data:`MAX_PACE_WAIT`: the sync stops here (its pages are
    stored) and the schedule resumes it, instead of a worker sleeping for hours."""


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


USER_AGENT = "quotagap/0.1"


def _is_401(response: httpx.Response) -> bool:
    return response.status_code == 401


def _never(response: httpx.Response) -> bool:
    return False


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class HeaderTokenAuth(httpx.Auth):
    """An API token in a header (Pipedrive's ``x-api-token``: never in a URL that gets logged)."""

    def __init__(self, header: str, token: str) -> None:
        self.header = header
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = self.token
        yield request


class OAuth2RefreshAuth(httpx.Auth):
    """OAuth2 with a refresh token: a refused answer (``is_auth_error``) is followed by one
    refresh and one retry. The CRM may rotate the refresh token; ``on_refresh`` receives the
    token answer to persist (the engine stores it encrypted). The refresh goes through the
    client's own send path, so it meets the same transport and request guard."""

    # is_auth_error may look at the body (HubSpot's category, Salesforce's errorCode).
    requires_response_body = True

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
        is_auth_error: Callable[[httpx.Response], bool] = _is_401,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.access_token = access_token
        self.basic_client_auth = basic_client_auth
        self.on_refresh = on_refresh
        self.is_auth_error = is_auth_error

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._apply(request)
        response = yield request
        if not self.is_auth_error(response):
            return
        answer = yield self._refresh_request(request)
        if not self._accept(answer):
            # Returning would hand the token endpoint's answer to the caller: say what failed.
            raise CrmAuthError(
                f"{request.method} {request.url.path}: credentials refused",
                status=response.status_code,
                body=response.text,
            )
        self._apply(request)
        yield request

    def _apply(self, request: httpx.Request) -> None:
        if self.access_token:
            request.headers["Authorization"] = f"Bearer {self.access_token}"

    def _refresh_request(self, request: httpx.Request) -> httpx.Request:
        data = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.basic_client_auth:
            pair = f"{self.client_id}:{self.client_secret or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            data["client_id"] = self.client_id
            if self.client_secret:
                data["client_secret"] = self.client_secret
        # The request's extensions carry the client's timeouts.
        return httpx.Request(
            "POST", self.token_url, data=data, headers=headers, extensions=request.extensions
        )

    def _accept(self, response: httpx.Response) -> bool:
        """Take the new tokens from the token endpoint's answer; False when it refused."""
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
        try:
            payload = response.json()
        except ValueError as exc:
            raise MalformedResponseError("token refresh: malformed JSON") from exc
        token = payload.get("access_token") if isinstance(payload, dict) else None
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
    is_auth_error: Callable[[httpx.Response], bool] = _is_401,
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
        is_auth_error=is_auth_error,
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
        auth: httpx.Auth | None = None,
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
            auth=auth,
            headers={
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
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
        response = self._send(method, url, **kwargs)
        status = response.status_code
        if status >= 400 and self.is_final(response):
            raise BudgetPaused(
                f"paused: daily API budget ({method} {_path(url)}: HTTP {status})",
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

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        # The client's auth adds the credentials (and refreshes them once on a refusal).
        request = self.http.build_request(method, url, **kwargs)
        self.requests += 1
        log.debug("%s %s", method, request.url.path)
        try:
            return self.http.send(request)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # Name the request that failed: it may be the token refresh, not ``request``.
            failed = _request_of(exc) or request
            refresh = failed.url != request.url
            what = "token refresh" if refresh else f"{method} {request.url.path}"
            raise RetryableError(f"{what}: {type(exc).__name__}") from exc

    def _pace(self, response: httpx.Response) -> None:
        if self.limits is None:
            return
        limits = self.limits(response)
        if limits.remaining is None or limits.limit is None or not limits.reset_seconds:
            return
        if limits.remaining <= max(1, int(limits.limit * self.slow_down_below)):
            # Spread the rest of the window over the calls left instead of running into 429,
            # and stop rather than wait long (a budget shared with the account's other users).
            wait = limits.reset_seconds / max(1, limits.remaining)
            if wait > MAX_PACE_WAIT:
                raise BudgetPaused(
                    f"paused: daily API budget ({limits.remaining} of {limits.limit} calls "
                    "left: resumed by the next scheduled sync)"
                )
            self.sleep(wait)

    # -- JSON helpers

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.json("GET", url, **kwargs)

    def post_json(self, url: str, **kwargs: Any) -> Any:
        return self.json("POST", url, **kwargs)

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """The decoded body; a malformed body is retried like a 5xx."""
        return self._retrying()(lambda: _json(self._send_once(method, url, **kwargs)))


def bearer_token(credentials: Mapping[str, Any]) -> httpx.Auth | None:
    """A static bearer from ``credentials["access_token"]`` (None without one)."""
    token = credentials.get("access_token")
    return BearerAuth(str(token)) if token else None


@dataclass(frozen=True)
class CrmWire:
    """What the one client builder needs to know of a CRM: which credentials it takes, how it
    authenticates the token refresh, and how to read its answers."""

    # The ValueError's text when the credentials hold neither form of auth.
    needs: str
    # The CRM's static credentials (a bearer, an API-token header), None when absent.
    static_auth: Callable[[Mapping[str, Any]], httpx.Auth | None] = bearer_token
    # Pipedrive: an api_token wins over OAuth credentials; elsewhere OAuth wins.
    static_first: bool = False
    # The client id and secret go to the token endpoint as HTTP Basic (else in the form).
    basic_client_auth: bool = False
    limits: LimitsHook | None = None
    slow_down_below: float = 0.1
    is_auth_error: Callable[[httpx.Response], bool] = _is_401
    is_retryable: Callable[[httpx.Response], bool] = _never
    is_final: Callable[[httpx.Response], bool] = _never
    client_class: type[CrmClient] = CrmClient


def build_client(
    base_url: str,
    *,
    wire: CrmWire,
    credentials: Mapping[str, Any],
    token_url: str,
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CrmClient:
    """The client of one CRM account: OAuth2 refresh when the credentials hold
    ``client_id`` and ``refresh_token`` (tokens refreshed at ``token_url``, handed to
    ``on_refresh``), else the CRM's static credentials."""
    oauth = oauth_from(
        credentials,
        token_url=token_url,
        on_refresh=on_refresh,
        basic_client_auth=wire.basic_client_auth,
        is_auth_error=wire.is_auth_error,
    )
    static = wire.static_auth(credentials)
    auth = (static or oauth) if wire.static_first else (oauth or static)
    if auth is None:
        raise ValueError(wire.needs)
    return wire.client_class(
        base_url,
        auth,
        transport=transport,
        limits=wire.limits,
        slow_down_below=wire.slow_down_below,
        is_auth_error=wire.is_auth_error,
        is_retryable=wire.is_retryable,
        is_final=wire.is_final,
        sleep=sleep,
    )


class MalformedResponseError(RetryableError):
    """A 2xx answer that is not JSON: proxies and overloaded CRMs do this; try again."""


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise MalformedResponseError(
            f"{response.request.method} {response.request.url.path}: malformed JSON"
        ) from exc


def _request_of(exc: httpx.RequestError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:  # raised before any request was attached
        return None


def _path(url: str) -> str:
    return url.split("?", 1)[0]
