"""Outbound webhooks admin (/admin/webhooks): endpoints, their secret, test events and log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm
from cass.models import WebhookDelivery, WebhookEndpoint
from cass.models.webhooks import WEBHOOK_EVENTS
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import webhooks
from cass.services.webhooks import WebhookError
from cass.tenancy import get_or_404
from cass.webhooks.forms import ActiveForm, EndpointForm

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")


def _common() -> dict[str, Any]:
    return {"event_labels": WEBHOOK_EVENTS, "window_minutes": 5}


def _list(status: int = 200) -> Response:
    """Render the endpoints page, or for htmx its table."""
    return render(
        "webhooks/index.html",
        "webhooks/_endpoints.html",
        status,
        endpoints=webhooks.endpoints(),
        **_common(),
    )


def _endpoint_page(
    endpoint: WebhookEndpoint,
    fragment: str = "webhooks/_endpoint.html",
    status: int = 200,
    secret: str | None = None,
    before: int | None = None,
    error: str | None = None,
) -> Response:
    """Render an endpoint's page (details and log), or for htmx the `fragment` of it."""
    response = render(
        "webhooks/endpoint.html",
        fragment,
        status,
        endpoint=endpoint,
        log=webhooks.deliveries(endpoint, before),
        secret=secret,
        error=error,
        **_common(),
    )
    if secret:
        # The secret is in this answer only: no cache may keep it.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@requires("webhooks.manage")
def index() -> Response:
    """List the tenant's webhook endpoints."""
    return _list()


@bp.route("/new", methods=["GET", "POST"])
@requires("webhooks.manage")
def new() -> Response:
    """Add an endpoint; its secret is shown once, in the answer."""
    form = EndpointForm()
    if form.validate_on_submit():
        endpoint, secret = webhooks.create_endpoint(
            current_user,
            form.url.data,
            form.description.data or "",
            form.events.data,
            form.active.data,
        )
        # htmx swaps the form for the endpoint's card and log; the address bar follows.
        response = _endpoint_page(endpoint, "webhooks/_created.html", secret=secret)
        response.headers["HX-Push-Url"] = url_for("webhooks.show", endpoint_id=endpoint.id)
        return response
    return render(
        "webhooks/new.html",
        "webhooks/_form.html",
        422 if form.is_submitted() else 200,
        form=form,
        endpoint=None,
        **_common(),
    )


@bp.get("/<int:endpoint_id>")
@requires("webhooks.manage")
def show(endpoint_id: int) -> Response:
    """Show an endpoint and its deliveries, newest first (`before` pages to older ones)."""
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    before = request.args.get("before", type=int)
    fragment = "webhooks/_delivery_rows.html" if before else "webhooks/_deliveries.html"
    return _endpoint_page(endpoint, fragment, before=before)


@bp.route("/<int:endpoint_id>/edit", methods=["GET", "POST"])
@requires("webhooks.manage")
def edit(endpoint_id: int) -> Response:
    """Change an endpoint's URL, description, events and active flag."""
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    form = EndpointForm(obj=endpoint)
    if form.validate_on_submit():
        webhooks.update_endpoint(
            current_user,
            endpoint,
            form.url.data,
            form.description.data or "",
            form.events.data,
            form.active.data,
        )
        if wants_fragment():
            return _endpoint_page(endpoint)
        flash("Endpoint saved.", "success")
        return redirect(url_for("webhooks.show", endpoint_id=endpoint.id), 303)
    return render(
        "webhooks/edit.html",
        "webhooks/_form.html",
        422 if form.is_submitted() else 200,
        form=form,
        endpoint=endpoint,
        **_common(),
    )


@bp.post("/<int:endpoint_id>/secret")
@requires("webhooks.manage")
def rotate(endpoint_id: int) -> Response:
    """Make a new secret and show it once; the previous one stops signing at once."""
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    if not ConfirmForm().validate_on_submit():
        return _endpoint_page(endpoint, status=422)
    return _endpoint_page(endpoint, secret=webhooks.rotate_secret(current_user, endpoint))


@bp.post("/<int:endpoint_id>/active")
@requires("webhooks.manage")
def toggle(endpoint_id: int) -> Response:
    """Enable or disable an endpoint; disabling drops its pending deliveries."""
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    form = ActiveForm()
    if not form.validate_on_submit():
        return _endpoint_page(endpoint, status=422)
    webhooks.set_active(current_user, endpoint, form.active.data == "on")
    if wants_fragment():
        return _endpoint_page(endpoint)
    flash(f"Endpoint {'enabled' if endpoint.active else 'disabled'}.", "success")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id), 303)


@bp.post("/<int:endpoint_id>/delete")
@requires("webhooks.manage")
def delete(endpoint_id: int) -> Response:
    """Delete an endpoint and its log; htmx gets the endpoints table back."""
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    if not ConfirmForm().validate_on_submit():
        return _list(422)
    webhooks.delete_endpoint(current_user, endpoint)
    if wants_fragment():
        return _list()
    flash("Endpoint deleted.", "success")
    return redirect(url_for("webhooks.index"), 303)


@bp.post("/<int:endpoint_id>/test")
@requires("webhooks.manage")
def send_test(endpoint_id: int) -> Response:
    """Queue a "ping" event for the endpoint; htmx gets its log back."""
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    if not ConfirmForm().validate_on_submit():
        return _endpoint_page(endpoint, "webhooks/_deliveries.html", 422)
    if not endpoint.active:
        return _endpoint_page(
            endpoint, "webhooks/_deliveries.html", 422, error="Enable the endpoint first."
        )
    webhooks.send_test(current_user, endpoint)
    if wants_fragment():
        return _endpoint_page(endpoint, "webhooks/_deliveries.html")
    flash("Test event queued; it is sent within seconds.", "success")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id), 303)


@bp.post("/deliveries/<int:delivery_id>/redeliver")
@requires("webhooks.manage")
def redeliver(delivery_id: int) -> Response:
    """Queue a failed delivery again; htmx gets its row back."""
    delivery = get_or_404(WebhookDelivery, delivery_id)
    endpoint = get_or_404(WebhookEndpoint, delivery.endpoint_id)
    error = None
    if not ConfirmForm().validate_on_submit():
        error = "The form expired; reload the page."
    else:
        try:
            webhooks.redeliver(current_user, delivery)
        except WebhookError as exc:
            error = str(exc)
    if wants_fragment():
        return render(
            "webhooks/_delivery_row.html",
            status=422 if error else 200,
            delivery=delivery,
            endpoint=endpoint,
            row_error=error,
            **_common(),
        )
    if error:
        return _endpoint_page(endpoint, status=422, error=error)
    flash("Delivery queued again.", "success")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id), 303)
