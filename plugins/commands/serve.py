"""``mgf serve``: the generate and infill API and a page to play with it, over HTTP (``pip install 'mgf-music[serve]'``)."""

import os
import socket
import sys

from mgf import InputError, UsageError, hookimpl, load_model

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_BODY = 1_000_000  # bytes of a request body, and of a socket's first message


def _bundles(given: list[str]) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` (named by its file's stem) of each ``--bundle``, each loaded once to fail here, not per request."""
    bundles = {}
    for text in given:
        name, _, path = text.rpartition("=") if "=" in text else (None, "", text)
        name = name or os.path.splitext(os.path.basename(path))[0]
        if name in bundles:
            raise UsageError(f"--bundle: the name {name!r} is given twice (name them: --bundle NAME=PATH)")
        load_model(path)
        bundles[name] = path
    return bundles


def _serve(args):
    try:
        import uvicorn

        from mgf.plugins.commands.serve_app import create_app

        import websockets  # noqa: F401 - uvicorn's WebSocket protocol, without which /api/stream would refuse every client
    except ImportError as error:
        raise UsageError(f"mgf serve needs {(error.name or 'starlette').partition('.')[0]}: pip install 'mgf-music[serve]'") from None
    for name, value in (("--port", args.port), ("--jobs", args.jobs), ("--max-steps", args.max_steps)):
        if value < (0 if name == "--port" else 1) or (name == "--port" and value > 65535):
            raise UsageError(f"{name} out of range: {value}")
    if args.queue < 0 or args.timeout <= 0 or args.idle <= 0:
        raise UsageError("--queue must be at least 0, --timeout and --idle positive")
    app = create_app(_bundles(args.bundle or []), token=args.token, workers=args.jobs, queue=args.queue,
                     timeout=args.timeout, max_steps=args.max_steps, max_body=MAX_BODY, idle=args.idle)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(2048)  # connections wait in the backlog from now on, until uvicorn accepts them
    except OSError as error:
        sock.close()
        raise InputError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    if args.host not in LOOPBACK and args.token is None:
        print(f"mgf: warning: serving on {args.host}: the API has no authentication, anyone who can reach this "
              "port can use it (give --token)", file=sys.stderr)
    host, port = sock.getsockname()[:2]
    print(f"mgf: serving on http://{'[' + host + ']' if ':' in host else host}:{port} (Ctrl-C stops)", file=sys.stderr, flush=True)
    # a socket message past the app's own bound (1 MB, answered 1009) is refused by uvicorn before it is all read
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, ws_max_size=MAX_BODY + 4096)
    uvicorn.Server(config).run(sockets=[sock])


@hookimpl
def register_commands(cli):
    p = cli.command("serve", "Serve the generate and infill API and a page to generate, see, hear and fill music "
                             "(pip install 'mgf-music[serve]').")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free one)")
    p.add_argument("--bundle", action="append", metavar="[NAME=]PATH",
                   help="also offer this model bundle, as NAME (default: the file's stem); repeatable")
    p.add_argument("--token", default=os.environ.get("MGF_SERVE_TOKEN") or None,
                   help="require the header Authorization: Bearer TOKEN on the API (default: MGF_SERVE_TOKEN, which "
                        "other users cannot read in the process list)")
    p.add_argument("--jobs", type=int, default=2, help="generations and socket sessions run at once (default: 2)")
    p.add_argument("--queue", type=int, default=16, help="requests waiting for a job; past them: 503 (default: 16)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a request waits for its piece (default: 30)")
    p.add_argument("--max-steps", type=int, default=4096,
                   help="steps one request may ask for, and tokens a middle of /api/infill may take (default: 4096)")
    p.add_argument("--idle", type=float, default=300.0,
                   help="seconds a jam over the socket (/api/stream) may go without a message before it ends (default: 300)")
    p.set_defaults(run=_serve)
