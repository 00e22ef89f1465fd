"""Gunicorn entry point of the local stack's Nova API.

`nova.wsgi.osapi_compute` parses `sys.argv` with oslo.config, which under gunicorn holds
gunicorn's own options; it reads its config files from OS_NOVA_CONFIG_DIR (api-paste.ini
and nova.conf there), so an argv without options is all it needs.
"""

from __future__ import annotations

import sys

sys.argv = ["nova-api"]

from nova.wsgi.osapi_compute import application  # noqa: E402

__all__ = ["application"]
