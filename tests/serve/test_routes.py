"""Every route of the status server over HTTP, in every state the page can be in."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import lxml.html
import pytest
from aiohttp.test_utils import TestClient, TestServer

from outagecomms.errors import TemplateError
from outagecomms.serve import create_app

from .conftest import MakeClient, make_config
from .records import NOW, MemorySource, record

XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"


def text_of(html: str) -> str:
    """The page as a reader sees it: its text, whitespace collapsed."""
    return " ".join(lxml.html.fromstring(html).text_content().split())


async def get_text(client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.text()


# --- no incident -----------------------------------------------------------------


async def test_no_incident_all_systems_operational(make_client: MakeClient):
    client = await make_client([])
    page = text_of(await get_text(client, "/"))
    assert "Acme Shop status" in page
    assert "All systems operational" in page
    assert "Current incidents" not in page
    assert "No incidents were resolved in the last 90 days." in page
    status = await (await client.get("/api/status.json")).json()
    assert status["status"] == {"indicator": "none", "description": "All systems operational"}
    assert status["incidents"] == []
    assert status["page"]["name"] == "Acme Shop"


async def test_planned_but_unsent_announcement_is_not_shown(make_client: MakeClient):
    client = await make_client([record("quiet", sent=None, title="Not yet announced")])
    assert "Not yet announced" not in await get_text(client, "/")
    await get_text(client, "/incidents/quiet", status=404)


# --- open incidents --------------------------------------------------------------


async def test_open_incident_shows_its_timeline_newest_first(make_client: MakeClient):
    client = await make_client(
        [
            record("mail", "investigating", sent=NOW - timedelta(hours=2), summary="Looking."),
            record("mail", "identified", sent=NOW - timedelta(hours=1), summary="Found it."),
        ]
    )
    html = await get_text(client, "/")
    page = text_of(html)
    assert "Partial service outage" in page and "Current incidents" in page
    assert "Email delivery is delayed" in page
    assert page.index("Identified") < page.index("Found it.") < page.index("Looking.")
    assert "UTC" in page
    doc = lxml.html.fromstring(html)
    assert doc.xpath("//a[normalize-space()='Email delivery is delayed']/@href") == [
        f"http://{client.host}:{client.port}/incidents/mail"
    ]
    for node in doc.xpath("//time"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", node.get("datetime"))


async def test_incident_page_has_the_whole_timeline_and_details(make_client: MakeClient):
    client = await make_client(
        [
            record("mail", "investigating", sent=NOW - timedelta(hours=2), summary="Looking."),
            record("mail", "monitoring", sent=NOW - timedelta(hours=1), details="Queue drains."),
            record("other", title="Another incident"),
        ]
    )
    page = text_of(await get_text(client, "/incidents/mail"))
    assert "Email delivery is delayed" in page and "Queue drains." in page
    assert page.index("Monitoring") < page.index("Investigating")
    assert "Another incident" not in page


async def test_several_open_incidents_worst_severity_wins(make_client: MakeClient):
    client = await make_client(
        [
            record("slow-search", title="Search is slow", severity="minor", sent=NOW),
            record(
                "checkout",
                title="Checkout is down",
                severity="critical",
                sent=NOW - timedelta(hours=1),
            ),
            record("mail", severity="major", sent=NOW - timedelta(hours=2)),
        ]
    )
    page = text_of(await get_text(client, "/"))
    assert "Major service outage" in page
    assert page.index("Search is slow") < page.index("Checkout is down")
    status = await (await client.get("/api/status.json")).json()
    assert status["status"]["indicator"] == "critical"
    assert [i["id"] for i in status["incidents"]] == ["slow-search", "checkout", "mail"]


async def test_each_severity_has_its_own_overall_state(make_client: MakeClient):
    expected = {
        "minor": "Minor service disruption",
        "major": "Partial service outage",
        "critical": "Major service outage",
    }
    for severity, words in expected.items():
        client = await make_client([record("x", severity=severity)])
        assert words in text_of(await get_text(client, "/"))
        status = await (await client.get("/api/status.json")).json()
        assert status["status"] == {"indicator": severity, "description": words}


# --- resolved incidents ----------------------------------------------------------


async def test_resolved_within_history_listed_beyond_not(make_client: MakeClient):
    client = await make_client(
        [
            record("recent", title="Recent outage", sent=NOW - timedelta(days=10, hours=2)),
            record("recent", "resolved", title="Recent outage", sent=NOW - timedelta(days=10)),
            record("old", title="Old outage", sent=NOW - timedelta(days=40, hours=1)),
            record("old", "resolved", title="Old outage", sent=NOW - timedelta(days=40)),
        ],
        history_days=30,
    )
    page = text_of(await get_text(client, "/"))
    assert "All systems operational" in page
    assert "Past incidents" in page and "Recent outage" in page
    assert "lasted 2 h" in page
    assert "Old outage" not in page
    feed = await get_text(client, "/feed.atom")
    assert "Recent outage" in feed and "Old outage" not in feed
    status = await (await client.get("/api/status.json")).json()
    assert status["incidents"] == []
    # Beyond the list, the incident's own page still answers (links in old emails keep working).
    old = text_of(await get_text(client, "/incidents/old"))
    assert "Old outage" in old and "Resolved" in old


async def test_unknown_incident_is_404_with_a_page(make_client: MakeClient):
    client = await make_client([record("mail")])
    for path in ("/incidents/nope", "/incidents/UPPER", "/incidents/a%20b", "/no/such/page"):
        html = await get_text(client, path, status=404)
        assert "Not found" in text_of(html)
    html = await get_text(client, "/incidents/%3Cimg%20src=x%20onerror=alert(1)%3E", status=404)
    assert "<img" not in html and XSS in text_of(html)


# --- status.json -------------------------------------------------------------------


async def test_status_json_shape_and_cors(make_client: MakeClient):
    eta = NOW + timedelta(hours=2)
    client = await make_client(
        [
            record("mail", "investigating", sent=NOW - timedelta(hours=1), summary="One."),
            record("mail", "identified", update="b", sent=NOW, eta=eta, summary="Two."),
        ],
        public_url="https://status.shop.example",
    )
    response = await client.get("/api/status.json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"page", "status", "incidents"}
    assert body["page"] == {
        "name": "Acme Shop",
        "url": "https://status.shop.example",
        "updated_at": NOW.isoformat().replace("+00:00", "Z"),
    }
    (incident,) = body["incidents"]
    assert set(incident) == {
        "id",
        "title",
        "status",
        "severity",
        "summary",
        "started_at",
        "eta",
        "updated_at",
        "url",
        "updates",
    }
    assert incident["url"] == "https://status.shop.example/incidents/mail"
    assert (incident["status"], incident["summary"]) == ("identified", "Two.")
    assert incident["eta"] == eta.isoformat().replace("+00:00", "Z")
    assert incident["updates"] == [
        {
            "status": "investigating",
            "update": None,
            "summary": "One.",
            "at": (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        },
        {
            "status": "identified",
            "update": "b",
            "summary": "Two.",
            "at": NOW.isoformat().replace("+00:00", "Z"),
        },
    ]


async def test_a_new_send_shows_on_the_next_request(make_client: MakeClient):
    source = MemorySource([])
    client = await make_client(source)
    assert (await (await client.get("/api/status.json")).json())["incidents"] == []
    source.records.append(record("mail"))
    assert [
        i["id"] for i in (await (await client.get("/api/status.json")).json())["incidents"]
    ] == ["mail"]


async def test_reads_are_cached_briefly(tmp_path: Path):
    source = MemorySource([record("mail")])
    app = create_app(make_config(tmp_path), source=source, ttl=60)
    async with TestClient(TestServer(app)) as client:
        for path in ("/", "/api/status.json", "/feed.atom", "/incidents/mail"):
            assert (await client.get(path)).status == 200
    assert source.reads == 1


async def test_ledger_that_cannot_be_read_is_503(make_client: MakeClient):
    class Broken(MemorySource):
        def announcements(self, incident=None):
            raise OSError("disk gone")

    client = await make_client(Broken())
    response = await client.get("/api/status.json")
    assert response.status == 503
    assert response.headers["Retry-After"] == "30"


# --- banner.js ---------------------------------------------------------------------


async def test_banner_js_points_at_the_status_json(make_client: MakeClient):
    client = await make_client([], public_url="https://status.shop.example/")
    response = await client.get("/banner.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    script = await response.text()
    assert '"https://status.shop.example/api/status.json"' in script
    assert "outagecomms-banner" in script and 'setAttribute("role", "status")' in script
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert len(script.encode()) < 4096


# --- escaping everywhere -------------------------------------------------------------


async def test_incident_text_is_escaped_everywhere(make_client: MakeClient):
    client = await make_client(
        [record("xss", title=XSS, summary=SCRIPT, details=XSS, affected=(SCRIPT,))]
    )
    for path in ("/", "/incidents/xss"):
        html = await get_text(client, path)
        assert "<img src=x" not in html and "<script>alert" not in html
        assert XSS in text_of(html) and "alert(2)" in text_of(html)
        doc = lxml.html.fromstring(html)
        assert doc.xpath("//img") == []
        assert all("alert" not in (s.text or "") for s in doc.xpath("//script"))
    feed = await get_text(client, "/feed.atom")
    assert "<img src=x" not in feed and "&lt;img src=x onerror=alert(1)&gt;" in feed
    body = await (await client.get("/api/status.json")).json()
    assert body["incidents"][0]["title"] == XSS
    assert body["incidents"][0]["summary"] == SCRIPT


async def test_pages_allow_only_their_own_script(make_client: MakeClient):
    client = await make_client([record("mail")])
    response = await client.get("/")
    policy = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    html = await response.text()
    scripts = lxml.html.fromstring(html).xpath("//script")
    assert [s.get("nonce") for s in scripts] == [nonce]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = (await client.get("/")).headers["Content-Security-Policy"]
    assert again != policy  # a fresh nonce per response


# --- links, sandbox label, templates, the other routes ---------------------------------


async def test_links_use_public_url_when_set(make_client: MakeClient):
    client = await make_client([record("mail")], public_url="https://status.shop.example")
    doc = lxml.html.fromstring(await get_text(client, "/"))
    assert "https://status.shop.example/incidents/mail" in doc.xpath("//a/@href")
    assert "https://status.shop.example/feed.atom" in doc.xpath("//link/@href")


async def test_head_requests_answer_without_a_body(make_client: MakeClient):
    client = await make_client([record("mail")])
    for path in ("/", "/feed.atom", "/api/status.json", "/banner.js", "/incidents/mail"):
        response = await client.head(path)
        assert response.status == 200, path


async def test_webhook_and_unsubscribe_routes_exist(make_client: MakeClient):
    client = await make_client([])
    for method, path in (
        ("POST", "/hooks/twilio/status"),
        ("POST", "/hooks/twilio/inbound"),
        ("POST", "/hooks/sendgrid"),
        ("GET", "/unsubscribe/some-token"),
        ("POST", "/unsubscribe/some-token"),
    ):
        response = await client.request(method, path)
        assert response.status not in (404, 405), (method, path)
    assert (await client.get("/hooks/sendgrid")).status == 405


async def test_a_company_restyles_the_page_with_its_own_template(tmp_path: Path, make_client):
    pages = tmp_path / "templates" / "pages"
    pages.mkdir(parents=True)
    packaged = Path(__file__).parents[2] / "src/outagecomms/templates/pages/base.html.j2"
    (pages / "base.html.j2").write_text(
        packaged.read_text().replace("Powered by outagecomms.", "Brought to you by Acme.")
    )
    client = await make_client([record("mail")])
    page = text_of(await get_text(client, "/"))
    assert "Brought to you by Acme." in page and "Email delivery is delayed" in page


def test_a_broken_page_template_stops_the_server_from_starting(tmp_path: Path):
    pages = tmp_path / "templates" / "pages"
    pages.mkdir(parents=True)
    (pages / "index.html.j2").write_text("{% if %}")
    with pytest.raises(TemplateError, match=r"index.html.j2, line 1"):
        create_app(make_config(tmp_path), source=MemorySource())


async def test_sandbox_pages_say_so_and_live_pages_do_not(make_client: MakeClient):
    sandbox = await make_client([record("mail", sandbox=True)], sandbox=True)
    assert "no customer saw them" in text_of(await get_text(sandbox, "/"))
    assert "no customer saw them" in text_of(await get_text(sandbox, "/incidents/mail"))
    live = await make_client([record("mail")])
    assert "no customer saw them" not in text_of(await get_text(live, "/"))
