"""Suite-wide set-up that must happen before any test module imports Cyborg.

Every cyborg-* process imports ``cyborg.cmd`` first, which selects oslo.service's threading
backend; importing ``cyborg.objects`` before that silently selects eventlet, and the functional
tests' real agent and conductor then refuse to start. Doing it here makes the suite independent
of the order in which pytest collects the folders.
"""

import cyborg.cmd  # noqa: F401
