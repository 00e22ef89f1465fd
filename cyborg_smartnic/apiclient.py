"""Every OpenStack API call of the tool: a per-request timeout and a bounded retry budget.

openstacksdk/keystoneauth wait forever on an endpoint that accepts and never answers; here
each connection is made with ``api_timeout`` (seconds per request, ``--api-timeout``), and
each call is tried at most ``attempts`` times (``--attempts``) on answers worth another try
(409, 5xx, connection failures, timeouts), with exponential backoff. Every retry is logged
as a warning, so a slow cloud is never silent for more than one timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cyborg_smartnic.errors import SmartNicError

LOG = logging.getLogger(__name__)
RETRY_STATUS = frozenset({409, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 20.0
DEFAULT_ATTEMPTS = 4
T = TypeVar("T")


class CloudError(SmartNicError):
    """The cloud refused or failed a request that retrying did not fix."""

    msg_fmt = "%(action)s failed: %(reason)s"


class CloudConnectError(SmartNicError):
    msg_fmt = "cannot connect to cloud %(cloud)s: %(reason)s"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = DEFAULT_ATTEMPTS
    first_delay: float = 0.5
    factor: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    timeout: float = DEFAULT_TIMEOUT  # seconds per HTTP request


def is_transient(exc: BaseException) -> bool:
    """409/5xx answers and connection failures or timeouts are worth another try."""
    from keystoneauth1 import exceptions as ksa_exc  # noqa: PLC0415
    from openstack import exceptions as sdk_exc  # noqa: PLC0415

    if isinstance(exc, sdk_exc.HttpException):
        return exc.status_code in RETRY_STATUS
    return isinstance(exc, ksa_exc.ConnectionError | ksa_exc.RequestTimeout |
                      ksa_exc.GatewayTimeout | ksa_exc.DiscoveryFailure | TimeoutError |
                      ConnectionError)


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def call(action: str, fn: Callable[[], T], policy: RetryPolicy,
         done: Callable[[], bool] | None = None) -> T | None:
    """Run ``fn``; on a transient failure wait, ask ``done()`` whether it happened anyway,
    and try again, at most ``policy.attempts`` times."""
    delay = policy.first_delay
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt == policy.attempts:
                tried = f" (tried {attempt} times)" if attempt > 1 else ""
                raise CloudError(action=action, reason=reason(exc) + tried) from exc
            LOG.warning("%s: %s (attempt %d of %d), retrying in %.1fs", action, reason(exc),
                        attempt, policy.attempts, delay)
            policy.sleep(delay)
            delay *= policy.factor
            try:
                if done is not None and done():
                    LOG.info("%s: already done", action)
                    return None
            except Exception as check_exc:
                if not is_transient(check_exc):
                    raise CloudError(action=action, reason=reason(check_exc)) from check_exc
    return None  # pragma: no cover - the loop always returns or raises


def read(action: str, fn: Callable[[], T], policy: RetryPolicy) -> T:
    """A read with the same retries; reads always return something or raise."""
    result = call(action, fn, policy)
    if result is None:  # pragma: no cover - reads never report "already done"
        raise CloudError(action=action, reason="no answer")
    return result


def connect(cloud: str | None, policy: RetryPolicy = RetryPolicy(), **overrides: Any) -> Any:
    """An openstacksdk ``Connection`` for ``cloud`` (clouds.yaml, or ``OS_*`` variables when
    None) whose every request gives up after ``policy.timeout`` seconds."""
    import openstack  # noqa: PLC0415  (slow import, only for commands that talk to a cloud)
    from keystoneauth1 import exceptions as ksa_exc  # noqa: PLC0415
    from openstack import exceptions as sdk_exc  # noqa: PLC0415

    overrides.setdefault("api_timeout", policy.timeout)
    try:
        return openstack.connect(cloud=cloud, **overrides)
    except (sdk_exc.SDKException, ksa_exc.ClientException, OSError, ValueError) as exc:
        raise CloudConnectError(cloud=cloud or "(OS_* environment)",
                                reason=reason(exc)) from exc
