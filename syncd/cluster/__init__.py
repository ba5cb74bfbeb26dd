"""Cluster mode: several syncd instances sharing projects through NATS JetStream (docs/scaling.md).

- ``ownership``: the lease decisions, without I/O (who may take a project, until when an owner acts).
- ``lease``: the leases in a JetStream key-value bucket (the NATS calls).
- ``journal``: the replicated journal of acknowledged mutations, a JetStream stream.
- ``nats``: connecting to the NATS servers.

Only cluster mode imports this package's NATS modules, so the ``nats-py`` client (the ``cluster``
extra) is needed only when ``[cluster] enabled = true``.
"""
