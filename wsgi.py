"""WSGI entry point: `gunicorn wsgi:app`."""

from cass import create_app

app = create_app()
