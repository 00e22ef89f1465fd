"""Gunicorn entry point of the local stack's Cyborg API.

`cyborg.wsgi.api` parses `sys.argv` with oslo.config, which under gunicorn holds gunicorn's
own options; hand it the stack's `--config-file` (from CYBORG_STACK_CONFIG) instead.
"""

from __future__ import annotations

import os
import sys

sys.argv = ["cyborg-api", "--config-file", os.environ["CYBORG_STACK_CONFIG"]]

from cyborg.wsgi.api import application  # noqa: E402

__all__ = ["application"]
