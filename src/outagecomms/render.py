"""Templates -> messages: the Jinja environment, template lookup, and each channel's limits.

Lookup for a part (DESIGN §6 and §16), first found wins. The message's locale (the
recipient's ``locale``, else ``organization.locale``; broadcasts always the latter) picks
folders: for ``fr-CA`` each templates folder is searched in ``fr-CA/``, then ``fr/``, then
itself, and within each of those the status-specific file comes before the generic one::

    <channel templates>/fr-CA/<kind>.<status>.<part>.j2, <channel templates>/fr-CA/<kind>.<part>.j2,
    <channel templates>/fr/..., <channel templates>/...,
    <config templates>/fr-CA/..., <config templates>/fr/..., <config templates>/...,
    the packaged defaults the same way.

Locale folders are found once per run by their names, matched like tags (``fr_ca`` is
``fr-CA``); a locale no folder serves costs nothing but its own cache entry. The ``when``
filter formats times in ``organization.timezone`` for the message's locale (Babel).

The environment is sandboxed, undefined variables are errors, and ``.html``
parts are autoescaped. A per-recipient template that never mentions
``recipient`` is rendered once per run instead of once per person; one that
only reads some of its fields (``recipient.name``) is rendered once per
distinct value of those fields, so "Hi {{ recipient.name or 'there' }}" costs
one rendering for an audience without names, not one per person. And one that
only prints fields, as ``{{ recipient.name }}`` or ``{{ recipient.name or "there" }}``,
is rendered once with a marker in their place; each person's text is then that
rendering with the markers replaced by their values (escaped in ``.html`` parts),
exactly what a full rendering would give, at a fraction of its cost.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from .config import LINE_BREAK, Config, DriverSettings, TwilioSettings
from .errors import LimitError, TemplateError
from .limits import TWILIO_MAX_BODY, sms_length, social_limit
from .locales import display_locale, fallbacks, format_when, normalise_locale
from .models import Incident, Kind, Message, Recipient
from .template_errors import explain_undefined

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"
PARTS: dict[str, tuple[str, ...]] = {
    "sms": ("txt",),
    "social": ("txt",),
    "banner": ("html",),
    "team": ("txt",),
    "email": ("subject", "txt", "html"),
}
EMAIL_SUBJECT_MAX = 200
#: Renderings kept per channel part for recipients with the same fields (then started afresh).
_BY_FIELDS_LIMIT = 4096
#: What templates read of a recipient: its fields, and the first name worked out from one.
_RECIPIENT_FIELDS = frozenset(f.name for f in dataclasses.fields(Recipient)) | {"first_name"}


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


class _PrefixLoader(jinja2.PrefixLoader):
    """A PrefixLoader whose templates keep their full name (``config/sms.txt.j2``), which
    ``_Environment.join_path`` needs to know the folder of a template that includes another."""

    load = jinja2.BaseLoader.load


def _locale_folders(root: Path) -> dict[str, str]:
    """The locale folders of a templates folder: tag key (``fr-ca``) -> folder name."""
    if not root.is_dir():
        return {}
    found: dict[str, str] = {}
    for entry in sorted(root.iterdir()):
        key = normalise_locale(entry.name) if entry.is_dir() else None
        if key is not None:
            found.setdefault(key, entry.name)
    return found


class _Environment(SandboxedEnvironment):
    """Resolves ``{% include "footer.txt.j2" %}`` (and extends, import) by the plain file name:
    in the including template's folder, then the folders after it in the lookup order (the
    including template's locale folders first in each)."""

    def __init__(self, roots: dict[str, Path], **options: Any) -> None:
        super().__init__(**options)
        self.roots = roots
        self.locale_folders = {prefix: _locale_folders(root) for prefix, root in roots.items()}
        self._safe: dict[tuple[type, str], bool] = {}

    def subfolders(self, prefix: str, key: str | None) -> list[str]:
        """Where to look inside one templates folder for locale ``key``: its locale folders
        from the most to the least specific that exist, then the folder itself (``""``)."""
        folders = self.locale_folders.get(prefix, {})
        chain = fallbacks(key) if key else []
        return [folders[k] + "/" for k in chain if k in folders] + [""]

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # The sandbox's verdict depends only on the object's type and the attribute's name
        # (``jinja2.sandbox.is_internal_attribute``), yet it is asked on every attribute a
        # template reads: remembered, it costs a dict lookup per read instead.
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            safe = self._safe[key] = super().is_safe_attribute(obj, attr, value)
        return safe

    def join_path(self, template: str, parent: str) -> str:
        prefix, _, rest = parent.partition("/")
        folder = rest.rpartition("/")[0]
        key = normalise_locale(folder) if folder else None
        later = ("config", "default")
        order = [prefix, *later[later.index(prefix) + 1 :]] if prefix in later else [prefix, *later]
        for root in order:
            if root not in self.roots:
                continue
            for sub in self.subfolders(root, key):
                if (self.roots[root] / sub / template).is_file():
                    return f"{root}/{sub}{template}"
        return f"{prefix}/{template}"


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where a template prints ``{{ recipient.<field> }}`` or ``{{ recipient.<field> or
    "<fallback>" }}``: ``marker`` stands in for it in the part's skeleton."""

    marker: str
    field: str
    fallback: str | None

    def value(self, recipient: Recipient, autoescape: bool) -> str:
        value = getattr(recipient, self.field)
        if self.fallback is not None and not value:
            value = self.fallback
        return str(escape(value)) if autoescape else str(value)


@dataclass(slots=True)
class _Part:
    template: jinja2.Template
    #: The recipient fields the template reads, when that is all it does with ``recipient``
    #: (then two recipients with equal fields get the same text): ``()`` for a template
    #: that never mentions ``recipient``; None when unknown (rendered for every person).
    fields: tuple[str, ...] | None
    #: When the template only prints fields (see ``_slots``): where, and its rendering
    #: with the markers (made on first use).
    slots: tuple[_Slot, ...] | None = None
    skeleton: str | None = None


# Nodes that can change what a printed value becomes (a filter block, a macro or call
# block, a captured ``set``, a switch of autoescaping): markers may not stand in for it.
_TRANSFORMING_NODES = (
    jinja2.nodes.FilterBlock,
    jinja2.nodes.Macro,
    jinja2.nodes.CallBlock,
    jinja2.nodes.AssignBlock,
    jinja2.nodes.EvalContextModifier,
)


def _slots(ast: jinja2.nodes.Template) -> tuple[_Slot, ...] | None:
    """The places a template prints recipient fields, when printing them whole is all it
    does with ``recipient`` (then a marker can stand in for each); None otherwise."""
    if any(True for _ in ast.find_all(_TRANSFORMING_NODES)):
        return None
    found: dict[str, _Slot] = {}
    matched = 0
    for output in ast.find_all(jinja2.nodes.Output):
        for node in output.nodes:
            fallback: str | None = None
            if (
                isinstance(node, jinja2.nodes.Or)
                and isinstance(node.right, jinja2.nodes.Const)
                and isinstance(node.right.value, str)
            ):
                node, fallback = node.left, node.right.value
            if (
                isinstance(node, jinja2.nodes.Getattr)
                and isinstance(node.node, jinja2.nodes.Name)
                and node.node.name == "recipient"
                and node.attr in _RECIPIENT_FIELDS
            ):
                slot = found.setdefault(
                    node.attr, _Slot(f"\x00{secrets.token_hex(8)}\x00", node.attr, fallback)
                )
                if slot.fallback != fallback:
                    # One marker per field: it cannot stand for two different outputs.
                    return None
                matched += 1
    uses = sum(1 for name in ast.find_all(jinja2.nodes.Name) if name.name == "recipient")
    if not found or uses != matched:
        return None
    return tuple(found.values())


def _recipient_fields(ast: jinja2.nodes.Template) -> tuple[str, ...] | None:
    """The ``recipient.<field>`` a template reads, or None when it uses ``recipient``
    any other way (whole, by subscript, in a loop, passed to a macro, assigned)."""
    reads = [
        node
        for node in ast.find_all(jinja2.nodes.Getattr)
        if isinstance(node.node, jinja2.nodes.Name) and node.node.name == "recipient"
    ]
    read_names = {id(node.node) for node in reads}
    for name in ast.find_all(jinja2.nodes.Name):
        if name.name == "recipient" and id(name) not in read_names:
            return None
    fields = sorted({node.attr for node in reads})
    return tuple(fields) if set(fields) <= _RECIPIENT_FIELDS else None


class Renderer:
    """Renders one incident for every channel of one configuration.

    ``channels``: the channels this run uses (default: every configured one), which
    templates see as ``announced_on`` (the team message names them).
    ``unsubscribe_url`` (address -> link) gives email templates ``unsubscribe_url``; they
    are rendered with a marker in its place (so the per-recipient caches keep working)
    and each message gets its own link put in. Without it the variable is ``None``.
    """

    def __init__(
        self,
        config: Config,
        incident: Incident,
        channels: list[str] | None = None,
        *,
        unsubscribe_url: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        self.incident = incident
        self._unsubscribe_url = unsubscribe_url
        self._unsubscribe_marker = (
            f"\x00unsubscribe-{secrets.token_hex(8)}\x00" if unsubscribe_url else None
        )
        self._roots: dict[str, Path] = {}
        loaders: dict[str, jinja2.BaseLoader] = {}
        for name, settings in config.channels.items():
            if settings.templates is not None:
                loaders[f"channel-{name}"] = jinja2.FileSystemLoader(
                    config.resolve(settings.templates)
                )
                self._roots[f"channel-{name}"] = config.resolve(settings.templates)
        loaders["config"] = jinja2.FileSystemLoader(config.resolve(config.templates))
        self._roots["config"] = config.resolve(config.templates)
        loaders["default"] = jinja2.FileSystemLoader(PACKAGED_TEMPLATES)
        self._roots["default"] = PACKAGED_TEMPLATES
        self.env = _Environment(
            self._roots,
            loader=_PrefixLoader(loaders, delimiter="/"),
            undefined=jinja2.StrictUndefined,
            autoescape=_autoescape,
            auto_reload=False,
            keep_trailing_newline=False,
        )
        org = config.organization
        self.zone = ZoneInfo(org.timezone)
        #: The locale of broadcasts and of recipients without a valid one (a tag key).
        self.default_locale = normalise_locale(org.locale) or "en"
        self.env.filters["when"] = self._when
        # Keyed by (channel, part, locale key).
        self._parts: dict[tuple[str, str, str], _Part] = {}
        self._by_fields: dict[tuple[str, str, str], dict[tuple[object, ...], str]] = {}
        # A recipient's ``locale`` cell -> its key, or None when invalid.
        self._locale_keys: dict[str | None, str | None] = {None: self.default_locale}
        self._base_context: dict[str, Any] = {
            "incident": incident,
            "organization": org,
            "vars": types.MappingProxyType(dict(incident.vars)),
            "announced_on": [
                {
                    "name": name,
                    "kind": config.channels[name].kind,
                    "driver": config.channels[name].driver,
                }
                for name in (config.channels if channels is None else channels)
            ],
        }

    # --- locales ---------------------------------------------------------------

    @jinja2.pass_context
    def _when(
        self, context: jinja2.runtime.Context, value: datetime | date | None, fmt: str = "time"
    ) -> str:
        """Format a time for people (``{{ incident.eta | when }}``, ``when("date")``,
        ``when("datetime")``, a CLDR pattern, or a strftime format with ``%``), in
        ``organization.timezone`` and the message's locale."""
        key = normalise_locale(str(context.get("locale") or "")) or self.default_locale
        return format_when(value, fmt, key, self.zone)

    def locale_key(self, recipient: Recipient | None) -> str:
        """The locale a message to ``recipient`` is written in (a tag key): theirs when it
        is valid, else ``organization.locale``; broadcasts (no recipient) the latter."""
        cell = None if recipient is None else recipient.locale
        key = self._locale_keys.get(cell, False)
        if key is False:
            key = self._locale_keys[cell] = normalise_locale(cell or "")
        return key or self.default_locale

    def invalid_locale(self, cell: str | None) -> bool:
        """True when an audience ``locale`` cell is set but not a usable language tag."""
        if cell is None:
            return False
        key = self._locale_keys.get(cell, False)
        if key is False:
            key = self._locale_keys[cell] = normalise_locale(cell)
        return key is None

    def template_locales(self) -> list[str]:
        """``organization.locale`` and every locale some templates folder has a folder for."""
        found = {key for folders in self.env.locale_folders.values() for key in folders}
        return [self.default_locale, *sorted(found - {self.default_locale})]

    # --- templates -------------------------------------------------------------

    def candidates(
        self, channel: str, kind: str, part: str, locale: str | None = None
    ) -> list[str]:
        """Template names to try, in lookup order, for a locale key (default: the
        organization's)."""
        status = self.incident.status
        key = locale or self.default_locale
        prefixes = [p for p in (f"channel-{channel}", "config", "default") if p in self._roots]
        return [
            f"{prefix}/{sub}{name}"
            for prefix in prefixes
            for sub in self.env.subfolders(prefix, key)
            for name in (f"{kind}.{status}.{part}.j2", f"{kind}.{part}.j2")
        ]

    def _part(self, channel: str, kind: str, part: str, locale: str) -> _Part:
        cached = self._parts.get((channel, part, locale))
        if cached is not None:
            return cached
        names = self.candidates(channel, kind, part, locale)
        try:
            template = self.env.select_template(names)
        except jinja2.TemplatesNotFound:
            shown = ", ".join(str(self._display(n)) for n in names[:2])
            raise TemplateError(
                f"channel '{channel}': no {kind} template for '{part}' (looked for {shown} and the"
                " packaged defaults); add one or run 'outagecomms init' to copy the defaults"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            where = f"{exc.filename or exc.name}, line {exc.lineno}"
            raise TemplateError(f"{where}: template syntax error: {exc.message}") from None
        except UnicodeDecodeError as exc:
            file = next((self._display(n) for n in names if self._display(n).is_file()), names[0])
            raise TemplateError(
                f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
            ) from None
        ast = self.env.parse(Path(template.filename or "").read_text(encoding="utf-8"))
        # A template that includes or extends another may reach ``recipient`` through it.
        includes = any(True for _ in jinja2.meta.find_referenced_templates(ast))
        fields: tuple[str, ...] | None
        if includes:
            fields = None
        elif "recipient" not in jinja2.meta.find_undeclared_variables(ast):
            fields = ()
        else:
            fields = _recipient_fields(ast)
        slots = _slots(ast) if fields else None
        result = _Part(template, fields, slots)
        self._parts[(channel, part, locale)] = result
        return result

    def _display(self, name: str) -> Path:
        prefix, _, rest = name.partition("/")
        return self._roots[prefix] / rest

    def _where(self, exc: BaseException, template: jinja2.Template) -> str:
        """``file, line N`` of the innermost template an error came from (Jinja rewrites
        tracebacks to template lines; an included template is innermost)."""
        folders = tuple(str(root) + os.sep for root in self._roots.values())
        where = f"{template.filename}, line ?"
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename == template.filename or filename.startswith(folders):
                where = f"{filename}, line {tb.tb_lineno}"
            tb = tb.tb_next
        return where

    def template_files(self, channel: str, kind: str, locale: str | None = None) -> list[Path]:
        """The file used for each part of a channel (for previews and ``check``)."""
        key = locale or self.default_locale
        return [
            Path(self._part(channel, kind, part, key).template.filename or "")
            for part in PARTS[kind]
        ]

    # --- rendering -------------------------------------------------------------

    def render_parts(
        self,
        channel: str,
        kind: str,
        recipient: Recipient | None = None,
        locale: str | None = None,
    ) -> dict[str, str]:
        """Every part of a channel's message in ``locale`` (a tag key; default: the
        recipient's, see ``locale_key``), stripped of surrounding whitespace."""
        locale = locale or self.locale_key(recipient)
        rendered: dict[str, str] = {}
        for part in PARTS[kind]:
            entry = self._part(channel, kind, part, locale)
            if entry.slots is not None and recipient is not None:
                rendered[part] = self._fill(channel, kind, entry, recipient, locale)
                continue
            same: dict[tuple[object, ...], str] | None = None
            values: tuple[object, ...] = ()
            if entry.fields is not None and (recipient is not None or not entry.fields):
                same = self._by_fields.setdefault((channel, part, locale), {})
                values = tuple(getattr(recipient, field) for field in entry.fields)
                if values in same:
                    rendered[part] = same[values]
                    continue
            text = self._render(channel, kind, entry, recipient, locale).strip()
            if same is not None:
                if len(same) >= _BY_FIELDS_LIMIT:
                    same.clear()
                same[values] = text
            rendered[part] = text
        return rendered

    def _fill(
        self, channel: str, kind: str, entry: _Part, recipient: Recipient, locale: str
    ) -> str:
        """A part that only prints recipient fields: its skeleton, markers replaced."""
        assert entry.slots is not None
        if entry.skeleton is None:
            markers = types.SimpleNamespace(**{slot.field: slot.marker for slot in entry.slots})
            entry.skeleton = self._render(channel, kind, entry, markers, locale)
        text = entry.skeleton
        autoescape = _autoescape(entry.template.name)
        for slot in entry.slots:
            text = text.replace(slot.marker, slot.value(recipient, autoescape))
        return text.strip()

    def _render(
        self, channel: str, kind: str, entry: _Part, recipient: object | None, locale: str
    ) -> str:
        """One rendering of a part, its errors turned into a ``TemplateError`` naming the
        file and line."""
        context = {
            **self._base_context,
            "channel": {"name": channel, "kind": kind},
            "unsubscribe_url": self._unsubscribe_marker if kind == "email" else None,
            "locale": display_locale(locale),
        }
        if recipient is not None:
            context["recipient"] = recipient
        try:
            return entry.template.render(context)
        except jinja2.UndefinedError as exc:
            where = self._where(exc, entry.template).replace(", line", " line")
            raise TemplateError(
                f"template {where}: {explain_undefined(exc.message or '')}"
            ) from None
        except jinja2.TemplateSyntaxError as exc:  # in a template it includes
            raise TemplateError(
                f"{exc.filename or exc.name}, line {exc.lineno}: template syntax error: "
                f"{exc.message}"
            ) from None
        except jinja2.TemplateNotFound as exc:
            prefix = (exc.name or "").partition("/")[0]
            missing = self._display(exc.name) if prefix in self._roots else exc.name
            raise TemplateError(
                f"{self._where(exc, entry.template)}: the template it includes or extends, "
                f"{missing}, does not exist; create it or fix the name"
            ) from None
        except UnicodeDecodeError as exc:
            raise TemplateError(
                f"{entry.template.filename}: a template it includes or extends is not UTF-8 "
                f"text ({exc.reason} at byte {exc.start}); save it as UTF-8"
            ) from None
        except Exception as exc:  # a template's own mistake, e.g. {{ vars.count + 1 }}
            raise TemplateError(
                f"{self._where(exc, entry.template)}: cannot work this out ({exc}); "
                "fix the template"
            ) from None

    def message(
        self,
        channel: str,
        kind: Kind,
        settings: DriverSettings,
        *,
        address: str,
        recipient: Recipient | None = None,
        reply_to: str | None = None,
    ) -> Message:
        """Render and check one message; ``LimitError`` if it does not fit its channel."""
        locale = self.locale_key(recipient)
        parts = self.render_parts(channel, kind, recipient, locale)
        files = {
            part: str(self._parts[(channel, part, locale)].template.filename) for part in parts
        }
        unsubscribe_url = None
        if kind == "email" and self._unsubscribe_url is not None:
            unsubscribe_url = self._unsubscribe_url(address)
            parts = self._with_link(channel, parts, files, unsubscribe_url)
        check_limits(channel, kind, settings, parts, address, files)
        if kind == "email":
            return Message(
                channel=channel,
                kind=kind,
                recipient=address,
                text=parts["txt"],
                subject=parts["subject"],
                html=parts["html"],
                name=recipient.name if recipient else None,
                incident=self.incident,
                unsubscribe_url=unsubscribe_url,
                locale=display_locale(locale),
            )
        body = parts["html"] if kind == "banner" else parts["txt"]
        return Message(
            channel=channel,
            kind=kind,
            recipient=address,
            text=body,
            incident=self.incident,
            reply_to=reply_to,
            locale=display_locale(locale),
        )

    def _with_link(
        self, channel: str, parts: dict[str, str], files: dict[str, str], url: str
    ) -> dict[str, str]:
        """``parts`` with the recipient's unsubscribe link where the marker stands."""
        marker = self._unsubscribe_marker
        assert marker is not None
        done = {}
        for part, text in parts.items():
            link = str(escape(url)) if part == "html" else url
            text = text.replace(marker, link)
            if "\x00" in text:  # what is left of a marker a filter changed
                raise TemplateError(
                    f"{files[part]}: unsubscribe_url is changed by a filter; print it as it is "
                    "({{ unsubscribe_url }})"
                )
            done[part] = text
        return done


def check_limits(
    channel: str,
    kind: str,
    settings: DriverSettings,
    parts: dict[str, str],
    address: str,
    templates: dict[str, str] | None = None,
) -> None:
    """Raise ``LimitError`` when a rendered message would be refused or cost too much.

    ``templates`` (part -> template file) lets the message name the file to shorten.
    """
    who = "" if address == "-" else f" for {address}"

    def template(part: str, label: str) -> str:
        file = (templates or {}).get(part)
        return f"the {label} template ({file})" if file else f"the {label} template"

    for part, text in parts.items():
        if not text:
            raise LimitError(f"channel '{channel}': the {kind} {part} renders empty{who}")
    if kind == "sms":
        text = parts["txt"]
        length = sms_length(text)
        limit = settings.max_segments if isinstance(settings, TwilioSettings) else 3
        if length.segments > limit:
            raise LimitError(
                f"channel '{channel}': the SMS{who} is {length.segments} segments "
                f"({length.characters} characters, {length.encoding}), over max_segments {limit}; "
                f"shorten {template('txt', 'sms')} or the incident summary, or raise max_segments"
                + (
                    " (one non-GSM character such as ’ or an emoji makes the whole text UCS-2)"
                    if length.encoding == "UCS-2"
                    else ""
                )
            )
        if len(text) > TWILIO_MAX_BODY:
            raise LimitError(
                f"channel '{channel}': the SMS{who} is {len(text)} characters, over Twilio's "
                f"{TWILIO_MAX_BODY}; shorten {template('txt', 'sms')}"
            )
    elif kind == "social":
        text = parts["txt"]
        current: DriverSettings | None = settings
        while current is not None:
            rule = social_limit(current.driver)
            length = rule.measure(text)
            if length > rule.maximum:
                raise LimitError(
                    f"channel '{channel}': the post is {length} {rule.unit}, over "
                    f"{rule.network}'s {rule.maximum} ({rule.rule}); shorten "
                    f"{template('txt', 'social')} or the incident summary"
                )
            current = current.fallback
    elif kind == "email":
        subject = parts["subject"]
        if LINE_BREAK.search(subject):
            raise LimitError(
                f"channel '{channel}': the email subject{who} spans several lines; "
                f"keep {template('subject', 'subject')} on one line"
            )
        if len(subject) > EMAIL_SUBJECT_MAX:
            raise LimitError(
                f"channel '{channel}': the email subject{who} is {len(subject)} characters, "
                f"over {EMAIL_SUBJECT_MAX}; shorten {template('subject', 'subject')} "
                "or the incident title"
            )
