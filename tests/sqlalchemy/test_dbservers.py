"""The database fixtures work on every backend, and a missing server is reported clearly."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbservers import ServerUnavailableError, ensure_server, reset_database
from sqlalchemy.ext.asyncio import AsyncEngine

BLOBS = [
    b"",
    b"\x00",
    b"\xff",
    b"\x00\xff\x00",
    bytes(range(256)),
    b"trailing zeros\x00\x00",
    b"trailing spaces  ",
    random.Random(0).randbytes(4096),
]
TEXTS = ["ada@example.com", "Zoë Ünal 😀", ""]


def _items() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        "items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100)),
        sa.Column("blob", sa.LargeBinary),
    )
    return metadata, table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestEngine:
    """`engine` is a working sync Engine on an empty private database of each backend."""

    def test_create_insert_select(self, engine: sa.Engine) -> None:
        metadata, items = _items()
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(items.insert(), [{"id": i, "name": t} for i, t in enumerate(TEXTS)])
        with engine.connect() as conn:
            names = conn.scalars(sa.select(items.c.name).order_by(items.c.id)).all()

        assert TEXTS == names

    def test_binary_round_trip(self, engine: sa.Engine) -> None:
        metadata, items = _items()
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(items.insert(), [{"id": i, "blob": b} for i, b in enumerate(BLOBS)])
        with engine.connect() as conn:
            blobs = conn.scalars(sa.select(items.c.blob).order_by(items.c.id)).all()

        assert BLOBS == blobs

    def test_large_binary_with_a_length_holds_megabytes(self, engine: sa.Engine) -> None:
        metadata = sa.MetaData()
        big = sa.Table("big", metadata, sa.Column("blob", sa.LargeBinary(2**24)))
        metadata.create_all(engine)
        value = random.Random(1).randbytes(1_000_000)
        with engine.begin() as conn:
            conn.execute(big.insert().values(blob=value))

        with engine.connect() as conn:
            assert value == conn.scalar(sa.select(big.c.blob))

    def test_concurrent_connections(self, engine: sa.Engine) -> None:
        metadata, items = _items()
        metadata.create_all(engine)
        workers, rows = 4, 25
        all_open = threading.Barrier(workers, timeout=30)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                with engine.connect() as conn:
                    all_open.wait()
                    for row in range(rows):
                        conn.execute(items.insert().values(id=worker * rows + row))
                        conn.commit()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [] == errors
        with engine.connect() as conn:
            assert workers * rows == conn.scalar(sa.select(sa.func.count()).select_from(items))

    def test_uncommitted_rows_are_invisible_to_other_connections(self, engine: sa.Engine) -> None:
        metadata, items = _items()
        metadata.create_all(engine)
        count = sa.select(sa.func.count()).select_from(items)
        with engine.connect() as writer, engine.connect() as reader:
            writer.execute(items.insert().values(id=1))
            assert 0 == reader.scalar(count)
            reader.rollback()
            writer.commit()

            assert 1 == reader.scalar(count)

    def test_each_test_starts_with_an_empty_database(self, engine: sa.Engine) -> None:
        assert [] == sa.inspect(engine).get_table_names()


@pytest.mark.anyio
class TestAsyncEngine:
    """`async_engine` is a working AsyncEngine on the same databases."""

    async def test_insert_select_binary(self, async_engine: AsyncEngine) -> None:
        metadata, items = _items()
        async with async_engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(items.insert(), [{"id": i, "blob": b} for i, b in enumerate(BLOBS)])
        async with async_engine.connect() as conn:
            blobs = (await conn.scalars(sa.select(items.c.blob).order_by(items.c.id))).all()

        assert BLOBS == blobs

    async def test_concurrent_connections(self, async_engine: AsyncEngine) -> None:
        metadata, items = _items()
        async with async_engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        workers = 4
        all_open = asyncio.Barrier(workers)

        async def work(worker: int) -> None:
            async with async_engine.connect() as conn:
                await asyncio.wait_for(all_open.wait(), timeout=30)
                await conn.execute(items.insert().values(id=worker, name=f"w{worker}"))
                await conn.commit()

        await asyncio.gather(*(work(w) for w in range(workers)))

        async with async_engine.connect() as conn:
            names = (await conn.scalars(sa.select(items.c.name).order_by(items.c.id))).all()
        assert [f"w{w}" for w in range(workers)] == names

    async def test_each_test_starts_with_an_empty_database(self, async_engine: AsyncEngine) -> None:
        async with async_engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())

        assert [] == tables


class TestMariaDB:
    """MariaDB's surprises that the encrypted column types must live with."""

    def test_plain_large_binary_is_a_64_kib_blob_and_strict_mode_refuses_more(
        self, mariadb_url: str
    ) -> None:
        metadata = sa.MetaData()
        blobs = sa.Table(
            "blobs",
            metadata,
            sa.Column("plain", sa.LargeBinary),
            sa.Column("sized", sa.LargeBinary(2**24)),
        )
        engine = sa.create_engine(mariadb_url)
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                conn.execute(blobs.insert().values(plain=b"x" * 65535, sized=b"x" * 65536))
            with pytest.raises(sa.exc.DataError, match="Data too long"), engine.begin() as conn:
                conn.execute(blobs.insert().values(plain=b"x" * 65536))
            types = [str(c["type"]) for c in sa.inspect(engine).get_columns("blobs")]
        finally:
            engine.dispose()
            reset_database(mariadb_url)

        assert ["BLOB", "LONGBLOB"] == types


class TestServerErrors:
    """A server that can't be reached or started is named, with its address and what was tried."""

    @pytest.mark.parametrize(
        ("name", "url"),
        [
            ("PostgreSQL", "postgresql+psycopg://root:s3cret@127.0.0.1:{port}/test"),
            ("MariaDB", "mariadb+pymysql://root:s3cret@127.0.0.1:{port}/test"),
        ],
    )
    def test_unreachable_without_a_start_command(self, name: str, url: str) -> None:
        port = _free_port()

        with pytest.raises(ServerUnavailableError) as info:
            ensure_server(name, url.format(port=port), None)

        message = str(info.value)
        assert f"{name} is not reachable at 127.0.0.1:{port}" in message
        assert "start command: none" in message
        assert "not installed on this machine" in message
        assert "s3cret" not in message

    @pytest.mark.skipif(os.geteuid() != 0, reason="only root may start servers")
    def test_failed_start_its_output_and_the_server_log_are_in_the_error(
        self, tmp_path: Path
    ) -> None:
        port = _free_port()
        url = f"mariadb+pymysql://root@127.0.0.1:{port}/test"
        start = [sys.executable, "-c", "print('no server here'); raise SystemExit(3)"]
        log = tmp_path / "error.log"
        log.write_text("".join(f"line {n}\n" for n in range(10)) + "[ERROR] Aborting\n")

        with pytest.raises(ServerUnavailableError) as info:
            ensure_server("MariaDB", url, start, wait=1, log=log)

        message = str(info.value)
        assert f"MariaDB is not reachable at 127.0.0.1:{port}" in message
        assert "Connection refused" in message
        assert f"start command: {' '.join(start)}" in message
        assert "exit status 3: no server here; waited 1 s" in message
        assert f"{log}: [ERROR] Aborting" in message
        assert f"{log}: line 5" not in message

    def test_a_remote_server_is_never_started(self) -> None:
        url = f"postgresql+psycopg://root@127.0.0.2:{_free_port()}/test"

        with pytest.raises(
            ServerUnavailableError, match=r"not run: 127\.0\.0\.2 is not this machine"
        ):
            ensure_server("PostgreSQL", url, ["false"])
