"""Serve moto single-threaded on 127.0.0.1 (see DESIGN.md "Local AWS").

The stock `moto_server` is threaded, and its DynamoDB condition check and
write are then not atomic. This serves the same WSGI application with
werkzeug's single-threaded server. It binds before it reports, so the port it
prints (or writes to --port-file) is already listening: no free-port race.

    python moto_launcher.py [--port N] [--port-file PATH] [--exit-on-stdin-eof]

With --exit-on-stdin-eof the server stops when its standard input closes, so
a test process that dies (or exits without dropping its handle) never leaves
an emulator behind.
"""

import argparse
import os
import sys
import threading


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
