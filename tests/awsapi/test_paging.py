"""Keyset pages of things and certificates (ListThings, ListCertificates) on both databases."""

from __future__ import annotations

from lantern.provisioning.queries import RegistryQueries
from lantern.store import Database
from lantern.store import registry as reg


async def test_pages_cover_everything_once(db: Database) -> None:
    async with db.transaction() as conn:
        for i in range(7):
            name = f"t-{i:02d}"
            await reg.insert_thing(
                conn, reg.ThingRecord(name, "default", {}, None, None, None, None, None, 1.0, 1.0)
            )
            # Three certificates share a creation time: the id breaks the tie.
            created = 100.0 + (i // 3)
            await reg.insert_certificate(
                conn,
                reg.CertificateRecord(
                    f"{i:064x}", "pem", "device", "ACTIVE", "default", None, created, created
                ),
            )
    queries = RegistryQueries(db)
    names, after = [], None
    while True:
        things = await queries.things_page(after, 3)
        names += [t.name for t in things]
        if len(things) < 3:
            break
        after = things[-1].name
    assert names == [f"t-{i:02d}" for i in range(7)]
    for ascending in (True, False):
        ids: list[str] = []
        key: tuple[float, str] | None = None
        while True:
            certs = await queries.certificates_page(key, 2, ascending=ascending)
            ids += [c.id for c in certs]
            if len(certs) < 2:
                break
            key = (certs[-1].created_at, certs[-1].id)
        expected = [f"{i:064x}" for i in range(7)]
        assert ids == (expected if ascending else expected[::-1])
