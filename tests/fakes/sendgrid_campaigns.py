"""Fake SendGrid Marketing Campaigns: Single Sends, listed page by page, unscheduled
and scheduled (PROVIDERS.md "SendGrid Marketing Campaigns")."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ._base import RECORD_KEY, FakeServer, json_response
from .sendgrid import DEFAULT_API_KEY, errors_response

#: The host SendGrid writes into ``_metadata.next`` (a client must not send its key there
#: when it is configured for another host).
PUBLIC_HOST = "https://api.sendgrid.com"
MAX_PAGE_SIZE = 100


@dataclass(slots=True)
class FakeSingleSend:
    id: str
    name: str
    status: str  # draft | scheduled | triggered
    send_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "categories": [], "is_abtest": False}


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class FakeSendGridCampaigns(FakeServer):
    """``GET /v3/marketing/singlesends`` (paged), ``DELETE`` and ``PUT .../{id}/schedule``.

    ``add(name, status, send_at)`` creates Single Sends; ``.single_sends`` shows them
    now. Faults beyond the base class: ``down_after=N`` answers 503 to every request
    after the first N that reached the API (SendGrid going down mid-run);
    ``forbidden=True`` answers 403 as for a key without Marketing access.
    """

    name = "sendgrid-campaigns"
    #: Largest page this fake hands out, whatever ``page_size`` asks (tests set it low
    #: so a few Single Sends already need several pages).
    page_size = MAX_PAGE_SIZE

    def __init__(
        self, *, api_key: str = DEFAULT_API_KEY, down_after: int | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.api_key = api_key
        self.down_after = down_after
        self.forbidden = False
        self._sends: dict[str, FakeSingleSend] = {}
        self._served = 0

    def add(self, name: str, status: str = "scheduled", send_at: str | None = None) -> str:
        with self._lock:
            single_send_id = f"ss-{len(self._sends) + 1:04d}-{name.lower().replace(' ', '-')}"
            self._sends[single_send_id] = FakeSingleSend(single_send_id, name, status, send_at)
        return single_send_id

    def set(self, single_send_id: str, status: str, send_at: str | None) -> None:
        """Change a Single Send as a person in SendGrid's web app would."""
        with self._lock:
            self._sends[single_send_id].status = status
            self._sends[single_send_id].send_at = send_at

    @property
    def single_sends(self) -> dict[str, FakeSingleSend]:
        with self._lock:
            return {k: replace(v) for k, v in self._sends.items()}

    def calls(self, method: str) -> list[str]:
        """Paths of the requests of one method that reached the API, in order."""
        return [r.path for r in self.requests if r.method == method]

    def _reset_views(self) -> None:
        self._served = 0

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v3/marketing/singlesends", self._list)
        app.router.add_delete("/v3/marketing/singlesends/{id}/schedule", self._unschedule)
        app.router.add_put("/v3/marketing/singlesends/{id}/schedule", self._schedule)

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return errors_response(401, [{"field": None, "message": "authorization required"}])
        if self.forbidden:
            return errors_response(403, [{"field": None, "message": "access forbidden"}])
        self._served += 1
        if self.down_after is not None and self._served > self.down_after:
            return errors_response(503, [{"field": None, "message": "service unavailable"}])
        return None

    async def _list(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            size = int(request.query.get("page_size", "10"))
            start = int(request.query.get("page_token", "0"))
        except ValueError:
            return errors_response(400, [{"field": "page_size", "message": "invalid"}])
        if not 1 <= size <= MAX_PAGE_SIZE:
            return errors_response(
                400, [{"field": "page_size", "message": f"must be 1..{MAX_PAGE_SIZE}"}]
            )
        size = min(size, self.page_size)
        with self._lock:
            everything = [s.as_json() for s in self._sends.values()]
        page = everything[start : start + size]
        base = f"{PUBLIC_HOST}/v3/marketing/singlesends?page_size={size}"
        metadata: dict[str, Any] = {
            "self": f"{base}&page_token={start}",
            "count": len(everything),
        }
        if start + size < len(everything):
            metadata["next"] = f"{base}&page_token={start + size}"
        return json_response(200, {"result": page, "_metadata": metadata})

    async def _unschedule(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        with self._lock:
            single_send = self._sends.get(request.match_info["id"])
            if single_send is None:
                return errors_response(404, [{"field": "id", "message": "not found"}])
            single_send.status, single_send.send_at = "draft", None
            body = single_send.as_json()
        return json_response(200, body)

    async def _schedule(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = request[RECORD_KEY].json
        send_at = body.get("send_at") if isinstance(body, dict) else None
        if not isinstance(send_at, str):
            return errors_response(400, [{"field": "send_at", "message": "required"}])
        moment = None if send_at == "now" else _parse_time(send_at)
        if send_at != "now" and (moment is None or moment <= datetime.now(UTC)):
            return errors_response(
                400, [{"field": "send_at", "message": "send_at must be a time in the future"}]
            )
        with self._lock:
            single_send = self._sends.get(request.match_info["id"])
            if single_send is None:
                return errors_response(404, [{"field": "id", "message": "not found"}])
            single_send.status = "triggered" if send_at == "now" else "scheduled"
            single_send.send_at = send_at
        return json_response(200, {"send_at": send_at, "status": single_send.status})
