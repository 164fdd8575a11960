"""Pausing the marketing emails scheduled at the ESP while an incident lasts (DESIGN §15).

While a company's mail is broken, the newsletter scheduled for tonight must not
go out. ``pause`` unschedules every scheduled SendGrid Single Send and records
each one under the incident *right after* SendGrid confirmed it, so the store
never claims a pause that did not happen and a run stopped half-way (SendGrid
down, a refused key) is completed by running it again. ``resume`` puts back
only what that incident paused: at the original time while it is still ahead,
else at the time the operator gives; it never schedules anything in the past.

The client talks to SendGrid with the project's HTTP plumbing
(``channels.base.make_http_client``); nothing here prints: the CLI shows the
``CampaignsResult`` it gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx

from .channels.base import make_http_client, retry_after, short
from .config import ENV_PREFIX, CampaignsSettings, Config
from .errors import CampaignsError, ConfigError, InputError, UnknownIncidentError
from .redact import redact

if TYPE_CHECKING:
    from .announcer import Announcer

#: Single Sends asked for per page (SendGrid's largest page).
PAGE_SIZE = 100
#: A send time closer than this is treated as passed: SendGrid would refuse it or
#: the email would leave before anyone could react.
MIN_LEAD = timedelta(minutes=1)
#: Attempts per request when SendGrid answers 429/5xx or the connection fails.
ATTEMPTS = 3
#: Longest wait between two attempts, whatever Retry-After asks.
MAX_WAIT = 30.0
_LIST_PATH = "/v3/marketing/singlesends"

Action = Literal["pause", "resume"]


class PausedRecord(Protocol):
    """What the store keeps about one Single Send an incident paused."""

    id: str
    name: str
    send_at: str | None
    paused_at: str
    resumed_at: str | None


class PausedCampaigns(Protocol):
    """The part of the ledger store that remembers pauses (``outagecomms.store``)."""

    def record_paused(
        self, incident: str, campaign_id: str, name: str, send_at: str | None
    ) -> None: ...

    def paused(self, incident: str) -> Sequence[PausedRecord]: ...

    def mark_resumed(self, incident: str, campaign_id: str, at: str) -> None: ...

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class SingleSend:
    """One Single Send as SendGrid lists it."""

    id: str
    name: str
    status: str
    send_at: str | None


@dataclass(frozen=True, slots=True)
class CampaignChange:
    """One Single Send that a run changed (or would change, in a dry run) or left alone.

    ``send_at`` is the time it was scheduled for when paused; ``new_send_at``
    the time a resume schedules it for; ``note`` says why it was left alone.
    """

    id: str
    name: str
    send_at: str | None
    new_send_at: str | None = None
    note: str | None = None


@dataclass(slots=True)
class CampaignsResult:
    """What ``pause`` or ``resume`` did for one incident.

    * ``changed``: unscheduled (pause) or rescheduled (resume), or would be in a dry run;
    * ``waiting``: resume only, paused Single Sends whose time has passed and that
      need ``--at``; they stay unscheduled;
    * ``closed``: resume only, paused Single Sends someone already rescheduled, sent
      or deleted at SendGrid; left as they are and not resumed again;
    * ``error``: why the run stopped early (SendGrid down, a refused key); what is in
      ``changed`` was done and recorded all the same.
    """

    incident: str
    action: Action
    dry_run: bool
    changed: list[CampaignChange] = field(default_factory=list)
    waiting: list[CampaignChange] = field(default_factory=list)
    closed: list[CampaignChange] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.waiting

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """SendGrid's send_at form: UTC, seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with a zone (``Z`` or an offset); ``ValueError`` otherwise."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"'{text}' has no time zone: add Z for UTC or an offset such as +01:00")
    return moment.astimezone(UTC)


def campaigns_settings(config: Config) -> CampaignsSettings:
    """The ``campaigns:`` block with its key, or a ``ConfigError`` saying what to add."""
    settings = config.campaigns
    if settings is None:
        raise ConfigError(
            f"{config.path}: no 'campaigns:' block; add 'campaigns: {{driver: sendgrid}}' and "
            f"set {ENV_PREFIX}CAMPAIGNS__API_KEY to a SendGrid key with Marketing access"
        )
    if settings.api_key is None:
        raise ConfigError(
            f"campaigns: no SendGrid key; set {ENV_PREFIX}CAMPAIGNS__API_KEY in the environment "
            "or in a .env file (a key with Marketing access)"
        )
    return settings


class SendGridCampaigns:
    """SendGrid Marketing Campaigns: list, unschedule and schedule Single Sends.

    Use as ``async with SendGridCampaigns(settings) as esp: ...``. Every failure
    raises ``CampaignsError`` with a sentence a marketing person can act on.
    """

    def __init__(self, settings: CampaignsSettings) -> None:
        self.settings = settings
        self.base_url = settings.effective_base_url
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> SendGridCampaigns:
        assert self.settings.api_key is not None
        self._http = make_http_client(
            timeout=self.settings.timeout,
            connections=1,
            headers={"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def single_sends(self) -> list[SingleSend]:
        """Every Single Send, following ``_metadata.next`` page after page."""
        found: list[SingleSend] = []
        target: str | None = f"{_LIST_PATH}?page_size={PAGE_SIZE}"
        seen: set[str] = set()
        while target is not None and target not in seen:
            seen.add(target)
            response = await self._request("GET", target, what="list the Single Sends")
            body = _json(response)
            for item in body.get("result") or []:
                if isinstance(item, dict) and item.get("id"):
                    found.append(
                        SingleSend(
                            id=str(item["id"]),
                            name=str(item.get("name") or ""),
                            status=str(item.get("status") or ""),
                            send_at=item.get("send_at") or None,
                        )
                    )
            target = _same_host_path((body.get("_metadata") or {}).get("next"))
        return found

    async def scheduled(self) -> list[SingleSend]:
        """The Single Sends that will go out at their ``send_at``."""
        return [s for s in await self.single_sends() if s.status == "scheduled"]

    async def unschedule(self, single_send: SingleSend) -> bool:
        """Unschedule one Single Send; False when SendGrid no longer has it (404)."""
        response = await self._request(
            "DELETE",
            f"{_LIST_PATH}/{single_send.id}/schedule",
            what=f"unschedule '{single_send.name}'",
            missing_ok=True,
        )
        return response.status_code != 404

    async def schedule(self, single_send_id: str, name: str, send_at: str) -> None:
        """Schedule one Single Send for ``send_at``."""
        await self._request(
            "PUT",
            f"{_LIST_PATH}/{single_send_id}/schedule",
            what=f"schedule '{name}' for {send_at}",
            json={"send_at": send_at},
        )

    async def _request(
        self,
        method: str,
        target: str,
        *,
        what: str,
        json: Any = None,
        missing_ok: bool = False,
    ) -> httpx.Response:
        """One API call, retried on 429/5xx and refused connections; errors explained."""
        assert self._http is not None, "use 'async with SendGridCampaigns(...)'"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._http.request(method, self.base_url + target, json=json)
            except httpx.TransportError as exc:
                if attempt < ATTEMPTS:
                    await asyncio.sleep(_backoff(attempt, None))
                    continue
                detail = redact(str(exc)) or type(exc).__name__
                raise CampaignsError(
                    f"could not {what}: SendGrid did not answer at {self.base_url} "
                    f"({type(exc).__name__}: {detail}); try again later"
                ) from None
            status = response.status_code
            if status < 300 or (missing_ok and status == 404):
                return response
            if (status == 429 or status >= 500) and attempt < ATTEMPTS:
                await asyncio.sleep(_backoff(attempt, retry_after(response.headers)))
                continue
            raise CampaignsError(_refusal(what, response))
        raise AssertionError("unreachable")  # the loop returns or raises


def _backoff(attempt: int, asked: float | None) -> float:
    return min(asked if asked is not None else 0.5 * 2 ** (attempt - 1), MAX_WAIT)


def _refusal(what: str, response: httpx.Response) -> str:
    status = response.status_code
    message = _error_message(response)
    if status in (401, 403):
        return (
            f"could not {what}: SendGrid refused the key in {ENV_PREFIX}CAMPAIGNS__API_KEY "
            f"(HTTP {status}: {message}); it needs Marketing access"
        )
    if status == 429 or status >= 500:
        return f"could not {what}: SendGrid is unavailable (HTTP {status}: {message}); try again"
    return f"could not {what}: SendGrid answered HTTP {status}: {message}"


def _error_message(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list) and errors:
        texts = [
            str(e.get("message") or "error") + (f" (field {e['field']})" if e.get("field") else "")
            for e in errors
            if isinstance(e, dict)
        ]
        return short("; ".join(texts))
    return short(response.text) or response.reason_phrase


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise CampaignsError(
            f"SendGrid answered something that is not JSON: {short(response.text, 120)}"
        ) from None
    return body if isinstance(body, dict) else {}


def _same_host_path(next_url: object) -> str | None:
    """The path and query of ``_metadata.next``: the next page is asked of the configured
    host, so the API key never goes anywhere the config does not name."""
    if not isinstance(next_url, str) or not next_url:
        return None
    parts = urlsplit(next_url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- pause and resume ----------------------------------------------------------------


async def pause(
    esp: SendGridCampaigns, store: PausedCampaigns, incident: str, *, dry_run: bool = False
) -> CampaignsResult:
    """Unschedule every scheduled Single Send and record each one under ``incident``.

    Each is recorded as soon as SendGrid confirmed it; a failure stops the run
    with ``error`` set and everything unscheduled until then recorded, so the
    same call again completes the pause.
    """
    result = CampaignsResult(incident, "pause", dry_run)
    try:
        for single_send in await esp.scheduled():
            change = CampaignChange(single_send.id, single_send.name, single_send.send_at)
            if not dry_run:
                if not await esp.unschedule(single_send):
                    continue  # deleted at SendGrid since it was listed: nothing to pause
                store.record_paused(incident, single_send.id, single_send.name, single_send.send_at)
            result.changed.append(change)
    except CampaignsError as exc:
        result.error = str(exc)
    return result


async def resume(
    esp: SendGridCampaigns,
    store: PausedCampaigns,
    incident: str,
    *,
    at: datetime | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> CampaignsResult:
    """Reschedule what ``incident`` paused: at its own time while that is ahead, else at
    ``at``; without ``at`` those wait (listed in ``waiting``, exit 1).

    A Single Send that is no longer a draft at SendGrid (someone rescheduled or sent
    it) or no longer exists is left alone and closed, so it is never scheduled twice.
    """
    now = now or utc_now()
    if at is not None and at < now + MIN_LEAD:
        raise InputError(f"--at {iso(at)} is not in the future; give a later time")
    result = CampaignsResult(incident, "resume", dry_run)
    todo = [record for record in store.paused(incident) if record.resumed_at is None]
    if not todo:
        return result
    try:
        current = {s.id: s for s in await esp.single_sends()}
        for record in todo:
            change = _resume_one(record, current.get(record.id), at, now)
            if change.note is not None:
                result.closed.append(change)
            elif change.new_send_at is None:
                result.waiting.append(change)
                continue
            else:
                if not dry_run:
                    await esp.schedule(record.id, record.name, change.new_send_at)
                result.changed.append(change)
            if not dry_run:
                store.mark_resumed(incident, record.id, iso(utc_now()))
    except CampaignsError as exc:
        result.error = str(exc)
    return result


def _resume_one(
    record: PausedRecord, now_at_esp: SingleSend | None, at: datetime | None, now: datetime
) -> CampaignChange:
    """What resuming one paused Single Send means: a new time, a wait, or a note."""
    base = CampaignChange(record.id, record.name, record.send_at)
    if now_at_esp is None:
        return replace(base, note="no longer exists at SendGrid")
    if now_at_esp.status != "draft":
        when = f" for {now_at_esp.send_at}" if now_at_esp.send_at else ""
        return replace(base, note=f"already {now_at_esp.status}{when} at SendGrid; left as it is")
    original = _parsed(record.send_at)
    if original is not None and original >= now + MIN_LEAD:
        return replace(base, new_send_at=iso(original))
    if at is not None:
        return replace(base, new_send_at=iso(at))
    return base


def _parsed(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


# --- for the library and the CLI ------------------------------------------------------


def list_scheduled(config: Config) -> list[SingleSend]:
    """The Single Sends scheduled at SendGrid right now."""
    settings = campaigns_settings(config)

    async def run() -> list[SingleSend]:
        async with SendGridCampaigns(settings) as esp:
            return await esp.scheduled()

    return asyncio.run(run())


def pause_campaigns(
    announcer: Announcer, incident_id: str, *, dry_run: bool = False
) -> CampaignsResult:
    """``pause`` for an incident the ledger knows (``InputError``, exit 2, otherwise)."""
    settings = campaigns_settings(announcer.config)
    with announcer.open_store() as store:
        _require_incident(store, incident_id)

        async def run() -> CampaignsResult:
            async with SendGridCampaigns(settings) as esp:
                return await pause(esp, store, incident_id, dry_run=dry_run)

        return asyncio.run(run())


def resume_campaigns(
    announcer: Announcer,
    incident_id: str,
    at: datetime | str | None = None,
    *,
    dry_run: bool = False,
) -> CampaignsResult:
    """``resume`` for an incident the ledger knows; ``at`` as a datetime or ISO text."""
    settings = campaigns_settings(announcer.config)
    when = _when(at)
    with announcer.open_store() as store:
        if not store.paused(incident_id):
            _require_incident(store, incident_id)

        async def run() -> CampaignsResult:
            async with SendGridCampaigns(settings) as esp:
                return await resume(esp, store, incident_id, at=when, dry_run=dry_run)

        return asyncio.run(run())


def _when(at: datetime | str | None) -> datetime | None:
    if at is None or isinstance(at, datetime):
        if at is not None and at.tzinfo is None:
            raise InputError("--at needs a time zone: add Z for UTC or an offset such as +01:00")
        return at
    if at.strip().lower() == "now":
        return utc_now() + 2 * MIN_LEAD  # "as soon as allowed": past the least lead time
    try:
        return parse_time(at)
    except ValueError as exc:
        raise InputError(f"--at '{at}' is not a time such as 2026-11-23T10:00:00Z: {exc}") from None


def _require_incident(store: PausedCampaigns, incident_id: str) -> None:
    for table in ("announcements", "deliveries"):
        if store.fetch(f"SELECT 1 FROM {table} WHERE incident=? LIMIT 1", (incident_id,)):
            return
    raise UnknownIncidentError(
        f"no incident '{incident_id}' in the ledger; pause campaigns under the id of an "
        "incident you announced (see 'outagecomms ledger')"
    )
