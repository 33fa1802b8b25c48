"""WSGI entry point for `gunicorn -c gunicorn.conf.py wsgi:app`; each worker imports it."""

from app import create_app

app = create_app()
