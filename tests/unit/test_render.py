from __future__ import annotations

from pathlib import Path

import pytest

from outagecomms import Incident, LimitError, Recipient, TemplateError, render
from outagecomms.config import Config, load_config
from outagecomms.render import Renderer


def make_config(tmp_path: Path, channels: str = "") -> Config:
    text = (
        "organization: {name: Acme Shop, status_url: https://shop.example/status}\n"
        "channels:\n"
        "  sms: {driver: twilio, from: '+15005550006', max_segments: 1}\n"
        "  social: {driver: x}\n  banner: {driver: file}\n  team: {driver: slack}\n"
        "  email: {driver: sendgrid, from: a@b.co}\n" + channels
    )
    (tmp_path / "channels.yaml").write_text(text)
    (tmp_path / "templates").mkdir(exist_ok=True)
    return load_config(tmp_path / "channels.yaml")


def template(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / name).write_text(text)


INCIDENT = Incident(id="mail-down", title="Mail is down", summary="Orders are safe.")


def test_defaults_render_every_kind(tmp_path: Path) -> None:
    renderer = Renderer(make_config(tmp_path), INCIDENT)
    ada = Recipient(email="ada@example.com", name="Ada")
    assert renderer.render_parts("sms", "sms", ada)["txt"].endswith("Reply STOP to opt out.")
    assert (
        "Updates: https://shop.example/status" in renderer.render_parts("social", "social")["txt"]
    )
    email = renderer.render_parts("email", "email", ada)
    assert email["subject"] == "[Investigating] Mail is down"
    assert email["txt"].startswith("Hi Ada,") and ">Hi Ada,</p>" in email["html"]
    assert "Mail is down" in renderer.render_parts("team", "team")["txt"]


def test_config_templates_win_status_specific_first(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    template(tmp_path, "sms.txt.j2", "generic {{ incident.id }}")
    renderer = Renderer(config, INCIDENT)
    assert renderer.render_parts("sms", "sms", Recipient())["txt"] == "generic mail-down"
    template(tmp_path, "sms.resolved.txt.j2", "  all fixed, {{ organization.name }}  \n\n")
    resolved = Renderer(config, INCIDENT.model_copy(update={"status": "resolved"}))
    # Surrounding whitespace is stripped, nothing is appended.
    assert resolved.render_parts("sms", "sms", Recipient())["txt"] == "all fixed, Acme Shop"
    # A packaged status-specific default loses to the config's generic template? No: the
    # config folder is searched first, status-specific then generic.
    assert resolved.candidates("sms", "sms", "txt")[:2] == [
        "config/sms.resolved.txt.j2",
        "config/sms.txt.j2",
    ]


def test_channel_templates_folder_comes_first(tmp_path: Path) -> None:
    (tmp_path / "vip").mkdir()
    (tmp_path / "vip" / "sms.txt.j2").write_text("VIP {{ recipient.name }}")
    config = make_config(tmp_path, "  vip: {driver: twilio, from: '+1500', templates: vip}\n")
    renderer = Renderer(config, INCIDENT)
    assert renderer.render_parts("vip", "sms", Recipient(name="Ada"))["txt"] == "VIP Ada"


def test_html_is_escaped_text_is_not(tmp_path: Path) -> None:
    nasty = INCIDENT.model_copy(update={"summary": "<script>alert(1)</script> & more"})
    renderer = Renderer(make_config(tmp_path), nasty)
    assert "<script>" not in renderer.render_parts("banner", "banner")["html"]
    assert "&lt;script&gt;" in renderer.render_parts("banner", "banner")["html"]
    assert "<script>alert(1)</script> & more" in renderer.render_parts("team", "team")["txt"]


def test_vars_are_available(tmp_path: Path) -> None:
    template(tmp_path, "team.txt.j2", "code {{ vars.coupon }}")
    incident = INCIDENT.model_copy(update={"vars": {"coupon": "SORRY10"}})
    assert Renderer(make_config(tmp_path), incident).render_parts("team", "team")["txt"] == (
        "code SORRY10"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("team.txt.j2", "hello\n{{ incident.nope }}", "team.txt.j2 line 2: incident has no field"),
        ("team.txt.j2", "{{ vars.coupon }}", "'coupon'"),
        ("team.txt.j2", "{{ recipient.name }}", "'recipient' is undefined"),
        ("team.txt.j2", "{% if %}", "team.txt.j2, line 1: template syntax error"),
        ("team.txt.j2", "{{ incident.__class__ }}", "team.txt.j2"),
    ],
)
def test_template_mistakes_are_template_errors(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    template(tmp_path, name, text)
    renderer = Renderer(make_config(tmp_path), INCIDENT)
    with pytest.raises(TemplateError) as caught:
        renderer.render_parts("team", "team")
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_template(tmp_path: Path) -> None:
    config = make_config(tmp_path, "  odd: {driver: file, templates: empty}\n")
    (tmp_path / "empty").mkdir()
    renderer = Renderer(config, INCIDENT)
    renderer.candidates("odd", "banner", "html")
    # Packaged defaults exist for every kind, so a missing template needs an unknown part.
    with pytest.raises(TemplateError, match="no banner template for 'svg'"):
        renderer._part("odd", "banner", "svg", "en")


def test_sms_over_max_segments_is_a_limit_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    template(tmp_path, "sms.txt.j2", "{{ 'a' * 161 }}")
    renderer = Renderer(config, INCIDENT)
    with pytest.raises(
        LimitError, match=r"2 segments \(161 characters, GSM-7\), over max_segments 1"
    ):
        renderer.message("sms", "sms", config.channels["sms"], address="+1", recipient=Recipient())
    template(tmp_path, "sms.txt.j2", "{{ 'a' * 69 }}’")
    renderer = Renderer(config, INCIDENT)
    renderer.message("sms", "sms", config.channels["sms"], address="+1", recipient=Recipient())
    template(tmp_path, "sms.txt.j2", "{{ 'a' * 70 }}’")
    renderer = Renderer(config, INCIDENT)
    with pytest.raises(LimitError, match="UCS-2"):
        renderer.message("sms", "sms", config.channels["sms"], address="+1", recipient=Recipient())


def test_post_over_280_is_a_limit_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    template(tmp_path, "social.txt.j2", "{{ 'a' * 256 }} https://example.com/{{ 'x' * 100 }}")
    Renderer(config, INCIDENT).message("social", "social", config.channels["social"], address="-")
    template(tmp_path, "social.txt.j2", "{{ 'a' * 257 }} https://example.com/{{ 'x' * 100 }}")
    with pytest.raises(LimitError, match="281 weighted characters, over X's 280"):
        Renderer(config, INCIDENT).message(
            "social", "social", config.channels["social"], address="-"
        )


def test_email_subject_limits(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    template(tmp_path, "email.subject.j2", "line one\nline two")
    with pytest.raises(LimitError, match="spans several lines"):
        Renderer(config, INCIDENT).message(
            "email", "email", config.channels["email"], address="a@b.co", recipient=Recipient()
        )
    template(tmp_path, "email.subject.j2", "{{ 'x' * 201 }}")
    with pytest.raises(LimitError, match="201 characters, over 200"):
        Renderer(config, INCIDENT).message(
            "email", "email", config.channels["email"], address="a@b.co", recipient=Recipient()
        )


TRICKY_PEOPLE = [
    Recipient(email="a@example.com", name="Ada"),
    Recipient(email="b@example.com"),  # no name: the fallback
    Recipient(email="c@example.com", name="<b>Bob & \"Co\"</b> 'x'"),
    Recipient(email="d@example.com", name="Zoë 李 😀", locale="fr-FR"),
    Recipient(email="e@example.com", name="{{ incident.title }} %s {0}"),
    Recipient(email="f@example.com", name="0"),
    Recipient(email="g@example.com", name="\x00 trailing spaces are stripped by Recipient "),
]


@pytest.mark.parametrize(
    ("text", "filled"),
    [
        # Fields printed whole: filled in from one rendering.
        ('Hi {{ recipient.name or "there" }}, {{ incident.title }} ({{ recipient.locale }})', True),
        (
            "{{ recipient.name or 'you' }}{% for n in [1, 2] %} {{ recipient.name or 'you' }}"
            "{% endfor %}",
            True,
        ),
        ('{% if incident.eta %}later{% endif %}Dear {{ recipient.name or "customer" }}', True),
        # Fields used any other way: rendered per person.
        (
            "{{ recipient.name }}{% for n in [1, 2] %} {{ recipient.name or 'you' }}{% endfor %}",
            False,
        ),
        ("{{ recipient.name | upper }}", False),
        ("{% if recipient.name %}Hi {{ recipient.name }}{% else %}Hello{% endif %}", False),
        ("{% filter upper %}{{ recipient.name }}{% endfilter %}", False),
        ("{% set who %}{{ recipient.name }}{% endset %}{{ who | lower }}", False),
        (
            "{% autoescape false %}{{ recipient.name }}{% endautoescape %} {{ recipient.name }}",
            False,
        ),
        ('{{ "Hi " ~ recipient.name }} {{ recipient["email"] }}', False),
        ("{{ recipient.name or 0 }} {{ recipient.email }}", False),
    ],
)
@pytest.mark.parametrize("part", ["txt", "html"])
def test_filling_in_fields_gives_exactly_a_full_rendering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, filled: bool, part: str
) -> None:
    template(tmp_path, f"email.{part}.j2", text)
    config = make_config(tmp_path)
    fast = Renderer(config, INCIDENT)
    got = [fast.render_parts("email", "email", person)[part] for person in TRICKY_PEOPLE]
    assert (fast._parts[("email", part, "en")].slots is not None) == filled
    # The reference: every person rendered in full by Jinja.
    monkeypatch.setattr(render, "_slots", lambda ast: None)
    full = Renderer(config, INCIDENT)
    assert got == [full.render_parts("email", "email", person)[part] for person in TRICKY_PEOPLE]


def test_a_field_printed_whole_is_filled_in_not_rendered_again(tmp_path: Path) -> None:
    template(tmp_path, "email.txt.j2", 'Hi {{ recipient.name or "there" }}, {{ incident | when }}')
    renderer = Renderer(make_config(tmp_path), INCIDENT)
    with pytest.raises(TemplateError, match=r"email\.txt\.j2"):
        # A template error that does not depend on the person is still reported once...
        renderer.render_parts("email", "email", Recipient(email="a@example.com", name="A"))
    template(tmp_path, "email.txt.j2", 'Hi {{ recipient.name or "there" }}.')
    renderer = Renderer(make_config(tmp_path), INCIDENT)
    texts = [
        renderer.render_parts("email", "email", Recipient(email=f"{n}@e.com", name=f"P{n}"))["txt"]
        for n in range(3)
    ]
    assert texts == ["Hi P0.", "Hi P1.", "Hi P2."]
