"""Cluster mode: several syncd instances sharing projects through NATS JetStream (docs/scaling.md).

- ``ownership``: the lease decisions, without I/O (who may take a project, until when an owner acts).
- ``lease``: the leases in a JetStream key-value bucket (the NATS calls).
- ``journal``: the replicated journal of acknowledged mutations, a JetStream stream.
- ``connection``: connecting to the NATS servers.
- ``port``: what the project host asks about owning projects (no NATS; single-process mode's answers).
- ``node``: this instance's cluster side: leases held, the journal, taking and losing projects.
- ``router``: the gateway's handler in cluster mode: an editor served here or relayed to the owner.
- ``relay``: the frames between an edge instance and a project's owner.

Only cluster mode imports this package's NATS modules, so the ``nats-py`` client (the ``cluster``
extra) is needed only when ``[cluster] enabled = true``.
"""
