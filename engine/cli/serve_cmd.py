"""``polyrec serve``: the HTTP API and web page over the engine of one config (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from polyrec.engine.cli._engine_args import add_config_argument

if TYPE_CHECKING:
    from polyrec.engine.server.auth import AccessPolicy
    from polyrec.engine.server.limits import ServerLimits

__all__ = ["add_parser", "run"]

#: ServerLimits field -> the option that sets it
_OPTIONS = {
    "max_batch_items": "--max-batch",
    "max_upload_bytes": "--max-upload-bytes",
    "max_body_bytes": "--max-body-bytes",
    "media_dirs": "--media-dir",
    "upload_dir": "--upload-dir",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the HTTP API and web page",
        description="Serve items, events, recommendations, similar items and search over HTTP "
        "(OpenAPI docs at /docs, a web page at /). Everything acknowledged is stored in the config's store.",
    )
    add_config_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--max-batch", type=int, metavar="N", help="items or events per request (default: 1000)")
    parser.add_argument(
        "--max-upload-bytes", type=int, metavar="N", help="bytes of an uploaded query file (default: 10 MiB)"
    )
    parser.add_argument("--max-body-bytes", type=int, metavar="N", help="bytes of a JSON body (default: 32 MiB)")
    parser.add_argument(
        "--media-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="directory item images may be served from; repeatable (default: the config file's folder)",
    )
    parser.add_argument(
        "--upload-dir",
        type=Path,
        metavar="DIR",
        help="where item files sent as bytes (PUT /items/{id}/files/{field}) are kept "
        "(default: uploads/ in the store's state folder)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes over the one store (default: 1); each sees the others' writes within the "
        "store's read-consistency interval",
    )
    parser.add_argument(
        "--keys",
        type=Path,
        metavar="FILE",
        help="API keys file made by `polyrec keys` (default: $POLYREC_KEYS_FILE; keys may also come from "
        "$POLYREC_API_KEYS); with keys, every data route needs one",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="serve a non-loopback --host without API keys (anyone who reaches the port may read and write)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a Host name clients use; repeatable (default: the loopback names for a loopback --host, any "
        "name otherwise); other names get a 400 (DNS rebinding)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="a web origin allowed to call the API from a browser, e.g. https://app.example; repeatable "
        "(default: none, CORS closed)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")
    parser.set_defaults(func=run)


def _access(args: argparse.Namespace) -> AccessPolicy:
    """Who may call the server: refuses a non-loopback bind without keys unless --insecure."""
    from polyrec.contracts import ConfigError
    from polyrec.engine.server.auth import LOOPBACK_HOSTS, AccessPolicy, is_loopback, load_keys

    try:
        keys = load_keys(args.keys)
    except ValueError as exc:
        raise ConfigError([("--keys", str(exc))], "(command line)") from None
    loopback = is_loopback(args.host)
    if not loopback and not keys and not args.insecure:
        problem = (
            f"{args.host} can be reached from other machines and no API keys are configured: create one with "
            "`polyrec keys create NAME` and pass --keys FILE (or set POLYREC_API_KEYS), or pass --insecure"
        )
        raise ConfigError([("--host", problem)], "(command line)")
    if args.allowed_host:
        hosts: tuple[str, ...] | None = (*LOOPBACK_HOSTS, *args.allowed_host)
    else:
        hosts = LOOPBACK_HOSTS if loopback else None
    return AccessPolicy(keys=keys, allowed_hosts=hosts, cors_origins=tuple(args.cors_origin or ()))


def _limits(args: argparse.Namespace) -> ServerLimits:
    from pydantic import ValidationError

    from polyrec.contracts import ConfigError
    from polyrec.engine.server.limits import ServerLimits

    options = {
        "max_batch_items": args.max_batch,
        "max_upload_bytes": args.max_upload_bytes,
        "max_body_bytes": args.max_body_bytes,
        "media_dirs": tuple(args.media_dir) if args.media_dir else None,
        "upload_dir": args.upload_dir,
    }
    try:
        return ServerLimits(**{key: value for key, value in options.items() if value is not None})
    except ValidationError as exc:
        problems = [(_OPTIONS.get(str(e["loc"][0]), str(e["loc"][0])), e["msg"]) for e in exc.errors()]
        raise ConfigError(problems, "(command line)") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from polyrec.engine.server.app import create_app
    from polyrec.engine.server.auth import ACCESS_ENV, access_environment

    limits = _limits(args)
    access = _access(args)
    if args.workers > 1:
        import os

        from polyrec.engine.server.replica import ENVIRONMENT_KEY, FACTORY, replica_environment

        # each worker process builds its own app; the store orders their writes (commit retries)
        os.environ[ENVIRONMENT_KEY] = replica_environment(args.config, limits)
        os.environ[ACCESS_ENV] = access_environment(access)  # digests only: no secret in the environment
        uvicorn.run(
            FACTORY, factory=True, host=args.host, port=args.port, log_level=args.log_level, workers=args.workers
        )
        return 0
    app = create_app(args.config, limits=limits, access=access)
    # one process: engine writes are serialised by an in-process lock
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    return 0
