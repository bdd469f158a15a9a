"""Clustering: several ``lantern serve`` processes (on one machine or many) acting as one
platform on PostgreSQL (or, for ``--workers`` on one machine, the shared SQLite file) and NATS.

This package holds what a node needs to join and take part: its identity (:mod:`.node`), the
shared platform material encrypted under the operator's secret (:mod:`.secrets`), the node
registry (:mod:`.registry`), one-at-a-time duties (:mod:`.singleton`), readiness
(:mod:`.health`), and the ``--workers`` supervisor with its embedded NATS server
(:mod:`.workers`, :mod:`.embedded_nats`); MQTT across nodes over NATS: the connection
(:mod:`.bus`) and interest routing, retained messages, takeover and kicks (docs/cluster.md).
"""
