"""Serve moto single-threaded on 127.0.0.1 (see DESIGN.md "Local AWS").

The stock `moto_server` is threaded, and its DynamoDB condition check and
write are then not atomic. This serves the same WSGI application with
werkzeug's single-threaded server. It binds before it reports, so the port it
prints (or writes to --port-file) is already listening: no free-port race.

    python moto_launcher.py [--port N] [--port-file PATH] [--exit-on-stdin-eof]

With --exit-on-stdin-eof the server stops when its standard input closes, so
a test process that dies (or exits without dropping its handle) never leaves
an emulator behind.

It also replaces how moto 5.2.5 makes TransactWriteItems all-or-nothing (see
`patch_transact_write_items`): moto deep-copies every table a transaction
names, once per item, so each write costs time in proportion to everything
the table (and its stream) has ever held. Writes then slow down as a load
test goes on until they pass the broker's AWS timeout. The replacement keeps
the same semantics by saving and restoring only the items the transaction
names.
"""

import argparse
import copy
import os
import sys
import threading
from typing import Any

MOTO_VERSION = "5.2.5"


def patch_transact_write_items() -> None:
    """Make a transaction's rollback cost O(items in it), not O(table).

    moto's own `transact_write_items` runs every operation in turn and, when
    one fails, puts back deep copies of whole tables taken beforehand. This
    wrapper runs the same function (so conditions, validation and error
    shapes are moto's) with the whole-table copy made a no-op, and instead
    saves, before it runs, a copy of each item the transaction names (or
    that it was absent) and the length of each table's stream. If moto
    raises, those items and streams are put back exactly, so a cancelled
    transaction leaves nothing behind, as before. The server is
    single-threaded, so nothing else runs in between.

    It touches moto internals, so it refuses to run on any moto but the
    pinned one (`scripts/requirements.txt`).
    """
    import moto
    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if moto.__version__ != MOTO_VERSION:
        raise SystemExit(
            f"moto_launcher: moto {moto.__version__} found, {MOTO_VERSION} "
            "expected (scripts/requirements.txt); re-create the venv"
        )

    class _KeepTables:
        """Stands in for the `copy` module inside moto's DynamoDB backend:
        a Table "copy" is the table itself, so moto's own rollback
        (`self.tables[name] = copy`) changes nothing; everything else is
        copied as before (moto's update_item copies the old item)."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    models.copy = _KeepTables()
    original = models.DynamoDBBackend.transact_write_items

    def touched(backend: Any, transact_items: list) -> list:
        saved = []
        for entry in transact_items:
            for op_type, op in entry.items():
                table = backend.tables.get(op.get("TableName"))
                if table is None:
                    continue
                attrs = op.get("Item") if op_type == "Put" else op.get("Key")
                if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
                    continue
                try:
                    hash_key = DynamoType(attrs[table.hash_key_attr])
                    range_key = None
                    if table.range_key_attr is not None:
                        if table.range_key_attr not in attrs:
                            continue
                        range_key = DynamoType(attrs[table.range_key_attr])
                    item = table.get_item(hash_key, range_key)
                except Exception:  # moto reports the bad key itself
                    continue
                saved.append((table, hash_key, range_key, copy.deepcopy(item)))
        return saved

    def restore(saved: list, streams: list) -> None:
        for table, hash_key, range_key, item in saved:
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
            else:
                by_range = table.items[hash_key]
                if item is None:
                    by_range.pop(range_key, None)
                    if not by_range:
                        table.items.pop(hash_key, None)
                else:
                    by_range[range_key] = item
        for shard, length in streams:
            del shard.items[length:]

    def transact_write_items(self: Any, transact_items: list) -> None:
        saved = touched(self, transact_items)
        streams = [
            (t.stream_shard, len(t.stream_shard.items))
            for t in self.tables.values()
            if t.stream_shard is not None
        ]
        try:
            return original(self, transact_items)
        except BaseException:
            restore(saved, streams)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    patch_transact_write_items()
    app = DomainDispatcherApplication(create_backend_app)
    # make_server(threaded=False) is what run_simple(threaded=False) builds
    # and serves; calling it directly lets us learn the port bound to 0.
    server = make_server(args.host, args.port, app, threaded=False, processes=1)
    port = server.socket.getsockname()[1]

    if args.exit_on_stdin_eof:

        def watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()

    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
