"""Repository of the ingest service (tables in :mod:`lantern.store.schema.ingest`), the same on
SQLite and PostgreSQL.

* :mod:`.records`: the records (plain data);
* :mod:`.ports`: :class:`ObservationSink`, the port the service's group commit writes through;
* :mod:`.sink`: :func:`open_observation_sink`, which picks the sink for a database;
* :mod:`.observations`: the batch insert and the Observation reads (FHIR search);
* :mod:`.tokens`, :mod:`.uploads`, :mod:`.outbox`: FHIR read tokens, upload links and files,
  the FHIR forwarding outbox.

Functions take an ``AsyncConnection`` so callers choose the transaction.
"""

from __future__ import annotations

from lantern.store.ingest.observations import (
    count_observations,
    get_observation,
    search_observations,
)
from lantern.store.ingest.outbox import due_outbox, mark_outbox, next_outbox_due, outbox_states
from lantern.store.ingest.ports import ObservationSink
from lantern.store.ingest.records import (
    FileRecord,
    ObservationQuery,
    ObservationRow,
    OutboxEntry,
    TokenRecord,
    UploadLink,
)
from lantern.store.ingest.sink import EngineObservationSink, SqliteWriterKind, open_observation_sink
from lantern.store.ingest.tokens import (
    find_active_token,
    insert_token,
    list_tokens,
    project_exists,
    revoke_token,
)
from lantern.store.ingest.uploads import (
    claim_link,
    count_files,
    get_file,
    get_link,
    insert_file,
    insert_link,
    list_files,
    pending_links,
    release_link,
    set_link_state,
)

__all__ = [
    "EngineObservationSink",
    "FileRecord",
    "ObservationQuery",
    "ObservationRow",
    "ObservationSink",
    "OutboxEntry",
    "SqliteWriterKind",
    "TokenRecord",
    "UploadLink",
    "claim_link",
    "count_files",
    "count_observations",
    "due_outbox",
    "find_active_token",
    "get_file",
    "get_link",
    "get_observation",
    "insert_file",
    "insert_link",
    "insert_token",
    "list_files",
    "list_tokens",
    "mark_outbox",
    "next_outbox_due",
    "open_observation_sink",
    "outbox_states",
    "pending_links",
    "project_exists",
    "release_link",
    "revoke_token",
    "search_observations",
    "set_link_state",
]
