"""The local stack and the demos, importable as ``deploy.*`` from a source checkout.

One way in: ``from deploy.stacklib import ...`` / ``from deploy import demo``, with the checkout
root on ``sys.path`` (pytest's ``pythonpath``; the scripts put it there when run as files,
``python deploy/stack.py``, the same as ``python -m deploy.stack``). Not part of the wheel.

The two lines each script (stack.py, demo.py) starts with to put the root there stay in each
script, not in a helper: they run before ``deploy`` can be imported, so a helper in this
package would need the very ``sys.path`` entry it makes (or deploy/ itself on the path, the
second way in this package no longer has).
"""
