"""``python -m cyborg_smartnic.host.detach COMMAND...``: exec COMMAND in a new session.

``host apply`` starts the privsep helper through this, so the daemon is not in the
terminal's foreground process group: Ctrl-C (or a signal to the whole group) reaches the CLI,
which rolls back, instead of also killing the daemon the rollback needs. It runs as the
caller, before sudo, and adds no privilege: it is what util-linux's ``setsid`` does.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        sys.exit("usage: python -m cyborg_smartnic.host.detach COMMAND [ARG...]")
    with contextlib.suppress(OSError):  # already a session leader: nothing to leave
        os.setsid()
    os.execvp(command[0], command)  # noqa: S606 - an argv list, as privsep built it


if __name__ == "__main__":
    main()
