"""Revision files (``NNNN_what.py``); alembic finds them by their ``revision`` variables."""
