"""Gunicorn entry point of the local stack's Neutron API.

`neutron.wsgi.api` parses `sys.argv` with oslo.config, which under gunicorn holds gunicorn's
own options; its config files come from OS_NEUTRON_CONFIG_DIR / OS_NEUTRON_CONFIG_FILES
(neutron.conf and ml2_conf.ini), so an argv without options is all it needs.
"""

from __future__ import annotations

import sys

sys.argv = ["neutron-api"]

from neutron.wsgi.api import application  # noqa: E402

__all__ = ["application"]
