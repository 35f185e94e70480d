"""Sign in, sign out, change password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from cass.auth.forms import ChangePasswordForm, LoginForm
from cass.permissions import requires
from cass.rendering import render
from cass.services import auth

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Return `target` if it is a path on this site, else the home page."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("main.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """Show the sign-in form and sign the user in."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        result = auth.authenticate(form.email.data, form.password.data, request.remote_addr or "")
        if result.user is not None:
            login_user(result.user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")), 303)
        error = result.error
    status = 422 if request.method == "POST" else 200
    return render("auth/login.html", "auth/_login_form.html", status, form=form, error=error)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Sign the user out."""
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.route("/account/password", methods=["GET", "POST"])
@requires("account.change_password")
def change_password() -> Response:
    """Let the signed-in user change their own password."""
    form = ChangePasswordForm()
    error = None
    if form.validate_on_submit():
        error = auth.change_password(current_user, form.current.data, form.new.data)
        if error is None:
            login_user(
                current_user._get_current_object(),
                remember=bool(request.cookies.get("remember_token")),
            )
            flash("Your password is changed. Other sessions are signed out.", "success")
            return redirect(url_for("main.home"), 303)
    status = 422 if request.method == "POST" else 200
    return render("auth/password.html", "auth/_password_form.html", status, form=form, error=error)
