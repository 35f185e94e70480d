"""Form widgets: WTForms' own markup, written faster where a page renders many of them.

WTForms writes every attribute through `Markup.format` (Python's string formatter) and every
option through four objects; the ticket list page renders a dozen fields and a hundred options
on each load. The markup stays exactly WTForms'.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from wtforms import widgets
from wtforms.widgets.core import clean_key


def html_params(**kwargs: Any) -> Markup:
    """Return `kwargs` as HTML attributes, exactly as `wtforms.widgets.html_params` does."""
    params = []
    for key, value in sorted(kwargs.items()):
        if value is True:
            params.append(escape(clean_key(key)))
        elif value is not False:
            params.append(f'{escape(clean_key(key))}="{_attribute(value)}"')
    return Markup(" ".join(params))  # noqa: S704 (every key and value is escaped above)


def _attribute(value: Any) -> str:
    # What html_params writes: escaped, and a quote that a Markup value holds as &quot;.
    escaped = escape(value)
    return escaped.replace(Markup('"'), Markup("&quot;")) if '"' in escaped else escaped


class TextInput(widgets.TextInput):
    """WTForms' TextInput with the faster html_params."""

    html_params = staticmethod(html_params)


class PasswordInput(widgets.PasswordInput):
    """WTForms' PasswordInput (never shows the value) with the faster html_params."""

    html_params = staticmethod(html_params)


class EmailInput(widgets.EmailInput):
    """WTForms' EmailInput with the faster html_params."""

    html_params = staticmethod(html_params)


class CheckboxInput(widgets.CheckboxInput):
    """WTForms' CheckboxInput with the faster html_params."""

    html_params = staticmethod(html_params)


class TextArea(widgets.TextArea):
    """WTForms' TextArea with the faster html_params."""

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        kwargs.setdefault("id", field.id)
        flags = getattr(field, "flags", {})
        for key in dir(flags):
            if key in self.validation_attrs and key not in kwargs:
                kwargs[key] = getattr(flags, key)
        params, value = html_params(name=field.name, **kwargs), escape(field._value())
        return Markup(f"<textarea {params}>\r\n{value}</textarea>")  # noqa: S704 (escaped)


class Select(widgets.Select):
    """WTForms' Select, same markup, its (value, label) options written directly.

    Anything but a plain list of pairs (groups, multiple) goes the WTForms way.
    """

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        choices = field.choices
        if (
            self.multiple
            or not isinstance(choices, list)
            or not all(type(choice) is tuple and len(choice) == 2 for choice in choices)
        ):
            return super().__call__(field, **kwargs)
        kwargs.setdefault("id", field.id)
        flags = getattr(field, "flags", {})
        for key in dir(flags):
            if key in self.validation_attrs and key not in kwargs:
                kwargs[key] = getattr(flags, key)
        html = [f"<select {html_params(name=field.name, **kwargs)}>"]
        coerce, data = field.coerce, field.data
        for value, label in choices:
            selected = " selected" if coerce(value) == data else ""
            shown = escape(label or value)
            if isinstance(value, bool):
                value = str(value)
            html.append(f'<option{selected} value="{_attribute(value)}">{shown}</option>')
        html.append("</select>")
        return Markup("".join(html))  # noqa: S704 (every value and label is escaped above)
