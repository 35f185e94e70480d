"""Charger list, charger page, remote operations, and the live streams of both pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from cass.chargers import live, message_export
from cass.chargers.blueprint import bp
from cass.chargers.forms import FORMS, CancelCommandForm, CommandForm
from cass.chargers.rows import charger_rows
from cass.models import Charger, User
from cass.permissions import PERMISSIONS, can, requires
from cass.rendering import render, wants_fragment
from cass.reports.usage import peak_load_panel, utilization_panel
from cass.services import charger_list, charger_page, message_log
from cass.services.charger_commands import CommandError, protocol_of
from cass.services.charger_list import ChargerPage
from cass.services.charger_page import PageQuery, Panel

BAD_CURSOR = (
    "This “Load more” link does not fit this list (it was altered, or is out of date). "
    "Nothing more was loaded; reload to start again."
)
# How often a page may be told to refresh: the list at most every 2 s, a charger page every
# 0.5 s (the first event of a quiet spell goes out at once, the last one always).
LIST_INTERVAL = 2.0
PAGE_INTERVAL = 0.5
WATCH_SECONDS = 1.0  # how often a charger page's stream re-reads its charger's last-seen
PANELS = {
    "timeline": (charger_page.timeline, "tl_after"),
    "messages": (charger_page.messages, "msg_after"),
    "sessions": (charger_page.sessions, "ss_after"),
}


bp.add_app_template_global(charger_rows, "charger_rows")


@bp.context_processor
def _chargers_context() -> dict[str, Any]:
    return {
        "connector_statuses": charger_list.CONNECTOR_STATUSES,
        "today": datetime.now(UTC).date(),
        "charger_cursor": charger_page.encode_cursor,
        "window": charger_page.WINDOW,
        "timeline_filters": charger_page.TIMELINE_FILTERS,
        "message_actions": charger_page.MESSAGE_ACTIONS,
    }


def _actor() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _charger_or_404(ocpp_id: str) -> Charger:
    """Return the charger with this OCPP id if the user may see it, else abort 404."""
    charger = charger_list.visible_charger(_actor(), ocpp_id)
    if charger is None:
        abort(404)
    return charger


def _push_url(response: BaseResponse, clean: str) -> BaseResponse:
    """Put `clean` in the address bar, unless it shows that URL already (a live refresh)."""
    shown = urlsplit(request.headers.get("HX-Current-URL", ""))
    same = (shown.path, shown.query) == urlsplit(clean)[2:4]
    response.headers["HX-Push-Url"] = "false" if same else clean
    return response


# --- the list -------------------------------------------------------------------------------


@bp.get("/chargers")
@requires("chargers.view")
def index() -> BaseResponse:
    """List the chargers the user may see: counts by state, filters, search, 50 rows a page.

    htmx gets the counts and table (a filter change, or a live refresh with `through`) or,
    with `after`, the next rows and a new "Load more" row; other requests get the whole page.
    Parameters that do not parse are ignored and named above the table; a bad cursor is a 422.
    """
    actor = _actor()
    query = charger_list.parse_query(request.args)
    if not wants_fragment():
        screen = charger_list.list_screen(actor, query)
        return render(
            "chargers/list.html",
            status=422 if screen.bad_cursor else 200,
            query=query,
            counts=screen.counts,
            listing=screen.listing,
            choices=charger_list.filter_choices(actor),
            error=BAD_CURSOR if screen.bad_cursor else None,
        )
    error, status = None, 200
    try:
        listing = charger_list.list_page(actor, query)
    except charger_list.BadCursor:
        listing, error, status = ChargerPage(query, [], None), BAD_CURSOR, 422
    context = {"query": query, "listing": listing, "error": error}
    if query.after:
        return render("chargers/_list_rows.html", status=status, **context)
    response = render(
        "chargers/_list_table.html",
        status=status,
        counts=(
            charger_list.state_counts(actor, query)
            if error
            else charger_list.counts_for(actor, query, listing)
        ),
        **context,
    )
    return _push_url(response, url_for("chargers.index", **query.params(through=None)))


# --- the charger page -----------------------------------------------------------------------


def _panel(charger: Charger, name: str, query: PageQuery) -> tuple[Panel, str | None]:
    """Return a panel's page, or an empty one and the message for a bad cursor."""
    read, _ = PANELS[name]
    try:
        return read(charger, query), None
    except charger_page.BadCursor:
        return Panel([], None), BAD_CURSOR


def _connector_numbers(states: list[charger_page.ConnectorState]) -> list[int]:
    numbers = [s.connector_no for s in states if s.connector_no > 0]
    return numbers or [1]


def live_context(charger: Charger) -> dict[str, Any]:
    """Return what the live parts of the page render: state, connectors, commands, jobs."""
    state = charger_page.live_state(_actor(), charger)
    return {
        "charger": charger,
        "head": state.head,
        "connectors": state.connectors,
        "commands": state.commands,
        "firmware_jobs": state.firmware_jobs,
        "diagnostics": state.diagnostics,
        "tickets": state.tickets,
        "site_url": _site_url(charger.site_id),
        "now": datetime.now(UTC),
    }


def _site_url(site_id: int) -> str | None:
    """Return the site's page, where there is one and the user may see it."""
    action = "sites.view"
    if "sites.site" not in current_app.view_functions or action not in PERMISSIONS:
        return None
    return url_for("sites.site", site_id=site_id) if can(current_user.role, action) else None


def _operations(charger: Charger) -> list[type[CommandForm]]:
    return list(FORMS[protocol_of(charger)].values())


@bp.get("/chargers/<ocpp_id>")
@requires("chargers.view")
def detail(ocpp_id: str) -> BaseResponse:
    """Show a charger: live state, boot data, timeline, OCPP messages, sessions, tickets, jobs
    and remote operations.

    htmx asks for parts: `part=live` (state, connectors, commands, jobs, tickets, swapped out of
    band), or one panel (`timeline`, `messages`, `sessions`: the panel, or with its `*_after`
    cursor the next rows). A bad cursor is a 422.
    """
    charger = _charger_or_404(ocpp_id)
    query = charger_page.parse_page_query(request.args)
    part = request.args.get("part") if wants_fragment() else None
    if part == "live":
        return render("chargers/_live.html", **live_context(charger))
    if part in PANELS:
        panel, error = _panel(charger, part, query)
        after = getattr(query, PANELS[part][1])
        template = f"chargers/_{part}_{'rows' if after else 'log'}.html"
        response = render(
            template,
            status=422 if error else 200,
            charger=charger,
            pq=query,
            panel=panel,
            error=error,
            now=datetime.now(UTC),
            show_id_tags=current_user.role != "vendor",
        )
        if part in ("timeline", "messages") and not after and not query.tl_through:
            clean = query.params(tl_after=None, tl_through=None, msg_after=None)
            clean.pop("ss_through", None)
            clean.pop("ss_after", None)
            _push_url(response, url_for("chargers.detail", ocpp_id=charger.ocpp_id, **clean))
        return response
    panels = {name: _panel(charger, name, query) for name in PANELS}
    bad = any(error for _, error in panels.values())
    return render(
        "chargers/detail.html",
        status=422 if bad else 200,
        pq=query,
        timeline=panels["timeline"][0],
        timeline_error=panels["timeline"][1],
        messages=panels["messages"][0],
        messages_error=panels["messages"][1],
        sessions=panels["sessions"][0],
        sessions_error=panels["sessions"][1],
        operations=_operations(charger),
        show_id_tags=current_user.role != "vendor",
        cancel_form=CancelCommandForm(formdata=None),
        **live_context(charger),
    )


@bp.get("/chargers/<ocpp_id>/messages.csv", defaults={"fmt": "csv"})
@bp.get("/chargers/<ocpp_id>/messages.jsonl", defaults={"fmt": "jsonl"})
@requires("messages.export")
def messages_export(ocpp_id: str, fmt: str) -> BaseResponse:
    """Download the charger's OCPP frames with the log's filters, oldest first (CSV or JSON
    Lines, streamed); a filter that does not parse is a 422."""
    charger = _charger_or_404(ocpp_id)
    try:
        flt = message_log.parse_export_filter(request.args)
    except message_log.BadExport as bad:
        return message_export.refuse(bad)
    return message_export.download(charger, flt, charger.ocpp_id, fmt)


@bp.get("/chargers/<ocpp_id>/utilization")
@requires("chargers.view")
def utilization(ocpp_id: str) -> BaseResponse:
    """Show a charger's utilization per connector over a period (the page's panel for htmx)."""
    charger = _charger_or_404(ocpp_id)
    return utilization_panel(
        url_for("chargers.utilization", ocpp_id=charger.ocpp_id),
        charger.ocpp_id,
        url_for("chargers.detail", ocpp_id=charger.ocpp_id),
        "connector",
        charger_ids=[charger.id],
    )


@bp.get("/chargers/<ocpp_id>/peak-load")
@requires("chargers.view")
def peak_load(ocpp_id: str) -> BaseResponse:
    """Show a charger's peak load and energy over a period (the page's panel for htmx)."""
    charger = _charger_or_404(ocpp_id)
    return peak_load_panel(
        url_for("chargers.peak_load", ocpp_id=charger.ocpp_id),
        charger.ocpp_id,
        url_for("chargers.detail", ocpp_id=charger.ocpp_id),
        charger.site_id,
        charger_id=charger.id,
    )


# --- remote operations ----------------------------------------------------------------------


def _command_form(charger: Charger, action: str) -> CommandForm:
    """Return the form of `action` for this charger's protocol (404 if it has none)."""
    cls = FORMS[protocol_of(charger)].get(action)
    if cls is None:
        abort(404)
    form = cls() if request.method == "POST" else cls(formdata=None)
    states = charger_page.connector_states(charger)
    form.prepare(_connector_numbers(states), charger_page.open_session_ids(charger))
    return form


@bp.route("/chargers/<ocpp_id>/commands/<action>", methods=["GET", "POST"])
@requires("chargers.command")
def command(ocpp_id: str, action: str) -> BaseResponse:
    """Show a remote operation's form, ask to confirm what it will send, then queue it.

    The first valid POST answers the confirmation step (the values as hidden fields and a
    Confirm button); the POST with `confirmed=1` queues the command, audited. Invalid input or
    a command the charger cannot take (CommandError) is the form again with 422, nothing
    queued. htmx gets fragments for the page's operations slot; others whole pages.
    """
    charger = _charger_or_404(ocpp_id)
    form = _command_form(charger, action)
    context: dict[str, Any] = {"charger": charger, "form": form, "error": None, "step": "form"}
    if request.method == "GET":
        return render("chargers/command.html", "chargers/_command_form.html", **context)
    if not form.validate_on_submit():
        return render("chargers/command.html", "chargers/_command_form.html", 422, **context)
    if form.confirmed.data != "1":
        context["step"] = "confirm"
        return render("chargers/command.html", "chargers/_command_confirm.html", **context)
    try:
        queued = charger_page.queue_command(charger, form.action, form.payload(), _actor())
    except CommandError as exc:
        context["error"] = str(exc)
        return render("chargers/command.html", "chargers/_command_form.html", 422, **context)
    if wants_fragment():
        return render(
            "chargers/_command_queued.html",
            charger=charger,
            queued=queued,
            title=form.title,
            commands=charger_page.commands(charger),
            cancel_form=CancelCommandForm(formdata=None),
        )
    flash(f"{form.title} queued for {charger.ocpp_id}; its answer appears below.", "success")
    return redirect(url_for("chargers.detail", ocpp_id=charger.ocpp_id, _anchor="commands"), 303)


@bp.post("/chargers/<ocpp_id>/commands/<int:command_id>/cancel")
@requires("chargers.command")
def cancel(ocpp_id: str, command_id: int) -> BaseResponse:
    """Withdraw a command the bridge has not sent yet (audited); a sent one cannot be (422)."""
    charger = _charger_or_404(ocpp_id)
    queued = charger_page.command_of(charger, command_id)
    if queued is None:
        abort(404)
    form = CancelCommandForm()
    if not form.validate_on_submit():
        abort(400)
    error = None
    try:
        charger_page.cancel_command(queued, _actor())
    except CommandError as exc:
        error = str(exc)
    if wants_fragment():
        return render(
            "chargers/_command_list.html",
            status=422 if error else 200,
            charger=charger,
            commands=charger_page.commands(charger),
            cancel_form=CancelCommandForm(formdata=None),
            command_error=error,
        )
    flash(error or f"Command {queued.action} withdrawn.", "error" if error else "success")
    return redirect(url_for("chargers.detail", ocpp_id=charger.ocpp_id, _anchor="commands"), 303)


# --- live streams ---------------------------------------------------------------------------


def _stream(keep: live.Keep, interval: float, watch: live.Watch | None = None) -> BaseResponse:
    """Answer with the user's tenant's events that `keep` accepts, coalesced (SSE)."""
    config = current_app.config
    return live.respond(
        keep,
        float(config.get("CHARGERS_LIVE_INTERVAL", interval)),
        watch,
        float(config.get("CHARGERS_WATCH_SECONDS", WATCH_SECONDS)),
    )


@bp.get("/events/chargers")
@requires("chargers.view")
def list_events() -> BaseResponse:
    """Stream the tenant's charger events for the list, at most one every 2 s (SSE)."""
    return _stream(live.any_charger, LIST_INTERVAL)


@bp.get("/events/chargers/<ocpp_id>")
@requires("chargers.view")
def charger_events(ocpp_id: str) -> BaseResponse:
    """Stream one charger's events and the tenant's command outcomes for its page (SSE)."""
    charger = _charger_or_404(ocpp_id)
    watch = charger_page.presence_watch(current_user.tenant_id, charger)
    return _stream(live.charger_filter(charger.ocpp_id), PAGE_INTERVAL, watch)
