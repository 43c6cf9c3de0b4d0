"""Sends due webhook deliveries from the outbox, with the delivery semantics of Svix/Stripe.

* Success is a 2xx within ``webhook_timeout_seconds`` (15 s); a 3xx is a failure (redirects
  are not followed).
* A failure (timeout, connection error, non-2xx) is retried after the next delay of
  ``webhook_retry_schedule_seconds`` (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)
  with ±10% jitter, or after ``Retry-After`` on 429/502/504; after the last attempt the
  delivery is ``failed`` and an ``alert.delivery_exhausted`` event is raised.
* ``410 Gone`` disables the endpoint at once; an endpoint failing for
  ``webhook_disable_after_days`` is disabled; ``disabled_reason`` says why.
* A sender claims a delivery (``locked_until``) before sending and records the attempt after.
  A sender that dies in between leaves the claim to expire and the delivery is sent again
  under the same ``webhook-id``: a receiver may see a retry, never a different id.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from app.alerts.models import Alert
from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import transaction
from app.core.exceptions import InvalidInputError
from app.webhooks import service
from app.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from connectors.http import parse_retry_after

log = logging.getLogger(__name__)

RETRY_AFTER_STATUSES = (429, 502, 504)
USER_AGENT = "QuotaGap-Webhooks/1.0"
MAX_RESPONSE_KEPT = 2000


@dataclass
class Outcome:
    status_code: int | None
    error: str | None
    response_body: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


class Dispatcher:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.jitter = jitter
        self.client = httpx.Client(
            timeout=settings.webhook_timeout_seconds,
            # Resolved once, checked, connected to the checked address (DNS rebinding).
            transport=transport or service.pinned_transport(settings),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        self.lock_for = timedelta(seconds=settings.webhook_timeout_seconds + 30)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one round

    def run_once(self, *, limit: int = 200) -> int:
        """Send every due delivery (up to ``limit``); the number of attempts made."""
        claimed = self._claim(limit)
        if not claimed:
            return 0
        senders = min(self.settings.webhook_senders, len(claimed))
        if senders == 1:
            for delivery_id in claimed:
                self._deliver(delivery_id)
        else:
            with ThreadPoolExecutor(senders, thread_name_prefix="webhook") as pool:
                list(pool.map(self._deliver, claimed))
        return len(claimed)

    def drain(self, *, rounds: int = 50) -> int:
        """Run rounds until nothing is due (tests and ``quotagap deliver``)."""
        total = 0
        for _ in range(rounds):
            sent = self.run_once()
            if not sent:
                break
            total += sent
        return total

    def _claim(self, limit: int) -> list[int]:
        now = self.clock()
        with transaction(self.session_factory) as session:
            due = list(
                session.scalars(
                    select(WebhookDelivery.id)
                    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                    .where(
                        WebhookEndpoint.is_enabled.is_(True),
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                        or_(
                            WebhookDelivery.locked_until.is_(None),
                            WebhookDelivery.locked_until < now,
                        ),
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(limit)
                )
            )
            claimed = []
            for delivery_id in due:
                # Conditional update: of two senders racing for a row, one wins.
                result = session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == "pending",
                        or_(
                            WebhookDelivery.locked_until.is_(None),
                            WebhookDelivery.locked_until < now,
                        ),
                    )
                    .values(locked_until=now + self.lock_for)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append(delivery_id)
        return claimed

    # -- one delivery

    def _deliver(self, delivery_id: int) -> None:
        try:
            with self.session_factory() as session:
                delivery = session.get(WebhookDelivery, delivery_id)
                endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
                if delivery is None or endpoint is None:
                    return
                if not endpoint.is_enabled or delivery.status != "pending":
                    # Disabled since the claim (a 410 earlier in this round): not sent; the
                    # delivery waits, unclaimed, for the endpoint to be enabled again.
                    self._release(session, delivery_id)
                    return
                url, body, message_id = endpoint.url, delivery.body, delivery.message_id
                secret = service.secret_of(self.settings, endpoint)
            outcome = self._send(url, secret, message_id, body)
            self._record(delivery_id, outcome)
        except Exception:  # one bad delivery must not stop the others; its claim expires
            log.exception("webhook delivery %s could not be processed", delivery_id)

    @staticmethod
    def _release(session: Session, delivery_id: int) -> None:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(locked_until=None)
        )
        session.commit()

    def _send(self, url: str, secret: str, message_id: str, body: str) -> Outcome:
        started = time.monotonic()
        try:
            service.check_destination(url, settings=self.settings)
        except InvalidInputError as exc:
            return Outcome(None, f"destination refused: {exc.message}", None, 0)
        # The wall clock, not self.clock: receivers reject timestamps more than 5 min off.
        now = datetime.now(UTC)
        signature = Webhook(secret).sign(message_id, now, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        limit = self.settings.webhook_timeout_seconds
        # httpx's timeout bounds each read, not the whole exchange: a receiver trickling its
        # answer could hold a sender far past it. The answer must be complete within it.
        deadline = time.monotonic() + limit
        kept = bytearray()
        try:
            with self.client.stream("POST", url, content=body.encode(), headers=headers) as r:
                code, retry_header = r.status_code, r.headers.get("retry-after")
                for chunk in r.iter_bytes():
                    kept += chunk[: MAX_RESPONSE_KEPT - len(kept)]
                    if time.monotonic() > deadline:
                        break
        except httpx.TimeoutException:
            return Outcome(None, f"timeout after {limit:g} s", None, self._ms(started))
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], None, self._ms(started))
        text = kept.decode("utf-8", "replace")
        if time.monotonic() > deadline:
            error = f"timeout after {limit:g} s (HTTP {code} not complete in time)"
            return Outcome(code, error, text, self._ms(started))
        retry_after = parse_retry_after(retry_header) if code in RETRY_AFTER_STATUSES else None
        failure: str | None = None
        if not 200 <= code < 300:
            failure = f"HTTP {code}" + (" (redirects are failures)" if 300 <= code < 400 else "")
        return Outcome(code, failure, text, self._ms(started), retry_after)

    @staticmethod
    def _ms(started: float) -> int:
        return int((time.monotonic() - started) * 1000)

    def _delay(self, attempts: int, outcome: Outcome) -> float | None:
        """Seconds until the next attempt after ``attempts`` attempts, or None: give up."""
        schedule = self.settings.webhook_retry_schedule_seconds
        if attempts >= len(schedule):
            return None
        if outcome.retry_after is not None:
            return min(outcome.retry_after, max(schedule))
        base = schedule[attempts]
        return base * (0.9 + 0.2 * self.jitter())

    def _record(self, delivery_id: int, outcome: Outcome) -> None:
        now = self.clock()
        with transaction(self.session_factory) as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.status != "pending":
                return
            endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
            assert endpoint is not None
            delivery.attempts += 1
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error
            delivery.locked_until = None
            next_at: datetime | None = None
            if outcome.ok:
                delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                    "succeeded",
                    now,
                    None,
                )
                endpoint.failing_since, endpoint.last_success_at = None, now
            else:
                endpoint.failing_since = endpoint.failing_since or now
                if outcome.status_code == 410:
                    service.disable(
                        endpoint, f"the endpoint answered 410 Gone at {now:%Y-%m-%d %H:%M} UTC", now
                    )
                elif now - endpoint.failing_since >= timedelta(
                    days=self.settings.webhook_disable_after_days
                ):
                    service.disable(
                        endpoint,
                        f"failing since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
                        f"(last error: {outcome.error})",
                        now,
                    )
                delay = self._delay(delivery.attempts, outcome)
                if delay is None:
                    delivery.status, delivery.next_attempt_at = "failed", None
                    self._exhausted(session, delivery, endpoint, now)
                else:
                    next_at = now + timedelta(seconds=delay)
                    delivery.next_attempt_at = next_at
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id,
                    attempted_at=now,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    response_body=outcome.response_body,
                    duration_ms=outcome.duration_ms,
                    next_attempt_at=next_at,
                )
            )
        if not outcome.ok:
            log.info(
                "webhook delivery %s to endpoint %s failed: %s",
                delivery_id,
                endpoint.id,
                outcome.error,
            )

    def _exhausted(
        self, session: Session, delivery: WebhookDelivery, endpoint: WebhookEndpoint, now: datetime
    ) -> None:
        """Record that a message was given up on, and tell the endpoints that asked to know."""
        if delivery.event_type in ("alert.delivery_exhausted", "webhook.test"):
            return  # no event about a failed failure notice, nor about a test ping
        key = f"exhausted|{delivery.id}|{delivery.message_id}"
        event_id = "alrt_" + hashlib.sha256(key.encode()).hexdigest()[:32]
        if session.scalar(select(Alert.id).where(Alert.event_id == event_id)) is not None:
            # Given up on again after a manual retry: the event was raised the first time (a
            # second insert would break the unique event_id, roll back the attempt and leave
            # the delivery to be re-sent every time its claim ran out).
            return
        alert = Alert(
            event_id=event_id,
            event_type="alert.delivery_exhausted",
            subject_type="delivery",
            subject_id=delivery.id,
            summary=(
                f"Gave up delivering {delivery.event_type} {delivery.message_id} to webhook "
                f"{endpoint.id} after {delivery.attempts} attempts (last error: "
                f"{delivery.last_error})."
            ),
            data={
                "webhook_id": endpoint.id,
                "delivery_id": delivery.id,
                "message_id": delivery.message_id,
                "alert_id": delivery.alert_id,
                "attempts": delivery.attempts,
                "last_error": delivery.last_error,
                "links": {"deliveries": f"/api/v1/webhooks/{endpoint.id}/deliveries"},
            },
            created_at=now,
        )
        session.add(alert)
        session.flush()
        service.enqueue(
            session=session, settings=self.settings, alerts=[alert], exclude_endpoint=endpoint.id
        )
