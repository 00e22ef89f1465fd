"""Helpers of deploy/stack.py: processes, RabbitMQ, the OpenStack services, the auth filter."""
