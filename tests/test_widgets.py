"""cass.widgets writes exactly the markup of the WTForms widgets it speeds up."""

from __future__ import annotations

import pytest
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    EmailField,
    Form,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Length

from cass import widgets as fast

ODD = "He said \"hi\" & <left> 'quietly'"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"name": "note", "id": "note"},
        {"checked": True, "disabled": False, "value": ODD},
        {"class_": "wide", "for_": "x", "data_live_list": "/a?b=1&c=2", "aria_describedby": "e"},
        {"value": Markup('already "marked" <b>')},
        {"maxlength": 80, "rows": 2, "value": 0},
    ],
)
def test_html_params_matches_wtforms(params):
    assert fast.html_params(**params) == widgets.html_params(**params)


class Sample(Form):
    text = StringField("Text", validators=[DataRequired(), Length(max=80)])
    secret = PasswordField("Secret", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    flag = BooleanField("Flag")
    notes = TextAreaField("Notes", validators=[Length(max=5000)])
    pick = SelectField("Pick", validate_choice=False)
    number = SelectField("Number", coerce=int, validate_choice=False)


def pairs(form):
    form.pick.choices = [("", "— none —"), ("a", "Alpha"), ("b&", ODD), (ODD, "")]
    form.number.choices = [(1, "One"), (2, "Two")]
    return [
        (fast.TextInput(), widgets.TextInput(), form.text),
        (fast.PasswordInput(), widgets.PasswordInput(), form.secret),
        (fast.EmailInput(), widgets.EmailInput(), form.email),
        (fast.CheckboxInput(), widgets.CheckboxInput(), form.flag),
        (fast.TextArea(), widgets.TextArea(), form.notes),
        (fast.Select(), widgets.Select(), form.pick),
        (fast.Select(), widgets.Select(), form.number),
    ]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"text": ODD, "flag": "y", "notes": ODD, "pick": "b&", "number": "2", "secret": ODD},
        {"email": ODD, "secret": "s3cret"},
        {"pick": ODD, "number": "x"},
    ],
)
@pytest.mark.parametrize("kwargs", [{}, {"aria_invalid": "false", "rows": 2, "class_": "c"}])
def test_widgets_match_wtforms(data, kwargs):
    form = Sample(MultiDict(data))
    form.validate()
    for ours, theirs, field in pairs(form):
        assert ours(field, **kwargs) == theirs(field, **kwargs), field.name


def test_select_with_groups_or_multiple_goes_the_wtforms_way():
    form = Sample()
    form.pick.choices = {"Group": [("a", "Alpha")], "Other": [("b", "Beta")]}
    assert fast.Select()(form.pick) == widgets.Select()(form.pick)
    form.pick.choices = [("a", "Alpha"), ("b", "Beta")]
    assert fast.Select(multiple=True)(form.pick) == widgets.Select(multiple=True)(form.pick)
