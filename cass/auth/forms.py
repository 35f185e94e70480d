"""Sign-in and password forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from cass.services.auth import MIN_PASSWORD
from cass.widgets import CheckboxInput, EmailInput, PasswordInput

# Every sign-in and password page renders these: WTForms' markup, written faster (cass.widgets).


class LoginForm(FlaskForm):
    """E-mail and password, with "remember me"."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)], widget=EmailInput())
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=200)], widget=PasswordInput()
    )
    remember = BooleanField("Remember me on this device", widget=CheckboxInput())


class ChangePasswordForm(FlaskForm):
    """The current password and a new one, twice."""

    current = PasswordField(
        "Current password",
        validators=[DataRequired(), Length(max=200)],
        widget=PasswordInput(),
    )
    new = PasswordField(
        "New password",
        validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200)],
        widget=PasswordInput(),
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new", message="The two new passwords differ.")],
        widget=PasswordInput(),
    )
