"""The local stack and the demos, importable as ``deploy.*`` from a source checkout.

One way in: ``from deploy.stacklib import ...`` / ``from deploy import demo``, with the checkout
root on ``sys.path`` (pytest's ``pythonpath``; the scripts put it there when run as files,
``python deploy/stack.py``, the same as ``python -m deploy.stack``). Not part of the wheel.
"""
