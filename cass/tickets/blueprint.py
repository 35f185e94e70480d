"""The tickets blueprint; its routes live in several modules, all registered on `bp`."""

from flask import Blueprint

bp = Blueprint("tickets", __name__, url_prefix="/tickets")
