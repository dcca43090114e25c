"""The FastAPI app over one :class:`~polyrec.engine.engine.Engine`.

    app = create_app("polyrec.toml")                 # or an Engine, or a config mapping
    uvicorn.run(app, host="127.0.0.1", port=8000)   # what `polyrec serve` does

Routes: ``/items`` (upsert, get, delete, similar, media), ``/events``, ``/users`` (list,
events, recommendations), ``/search``, ``/health``, ``/plugins``; the web page at ``/``;
OpenAPI docs at ``/docs`` and ``/redoc``, served offline (:mod:`.api_docs`). Items, field vectors
and events live in the engine's store (LanceDB by default), so a restart loses nothing that was
acknowledged with a 2xx.

Run it in one process (one uvicorn worker): writes are serialised in-process (see :mod:`.writes`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from polyrec.contracts import PolyrecConfig, PolyrecError
from polyrec.engine.engine import Engine
from polyrec.engine.plugins import PolyrecPluginManager, polyrec_version
from polyrec.engine.server import routes_items, routes_search, routes_user_attributes, routes_users
from polyrec.engine.server.api_docs import install_api_docs
from polyrec.engine.server.auth import AccessGuard, AccessPolicy, access_from_environment, api_key_dependencies
from polyrec.engine.server.context import Context, ServerContext
from polyrec.engine.server.errors import install_error_handlers, public_detail, status_of
from polyrec.engine.server.fast_recommend import FastRecommend
from polyrec.engine.server.item_uploads import state_dir_of, with_upload_dir
from polyrec.engine.server.limits import BodySizeLimit, ServerLimits

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _open_engine(
    config: str | Path | Mapping[str, Any] | PolyrecConfig | Engine,
    base_dir: str | Path | None,
    plugin_manager: PolyrecPluginManager | None,
) -> tuple[Engine, bool]:
    if isinstance(config, Engine):
        return config, False
    return Engine.from_config(config, base_dir=base_dir, plugin_manager=plugin_manager), True


def _default_media_dirs(config: Any, base_dir: str | Path | None) -> tuple[Path, ...]:
    """Without configured media directories: the config file's folder (or ``base_dir``)."""
    if isinstance(config, str | Path):
        return (Path(config).resolve().parent,)
    return (Path(base_dir),) if base_dir is not None else ()


def create_app(
    engine_or_config: Engine | str | Path | Mapping[str, Any] | PolyrecConfig,
    *,
    limits: ServerLimits | None = None,
    base_dir: str | Path | None = None,
    plugin_manager: PolyrecPluginManager | None = None,
    access: AccessPolicy | None = None,
) -> FastAPI:
    """An app serving ``engine_or_config`` (an Engine, a config file path or a config mapping).

    An engine built here is closed when the app shuts down; an Engine passed in stays
    open (its owner closes it). ``limits`` default to :class:`ServerLimits`; image files are
    served from ``limits.media_dirs``, by default the config file's folder (or ``base_dir``).
    ``access`` says who may call it (API keys, ``Host`` names, CORS origins: :mod:`.auth`);
    by default anyone on any host name, which only suits a loopback address (``polyrec
    serve`` builds a stricter policy).
    """
    access = access or access_from_environment() or AccessPolicy()  # the environment: a --workers replica
    limits = limits or ServerLimits()
    if not limits.media_dirs:
        limits = limits.model_copy(update={"media_dirs": _default_media_dirs(engine_or_config, base_dir)})
    engine, owns_engine = _open_engine(engine_or_config, base_dir, plugin_manager)
    limits = with_upload_dir(limits, state_dir_of(engine))  # items' uploaded files: a media directory
    ctx = ServerContext(engine, limits, owns_engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(ctx.open_collections)  # may load a model: then the first request is fast
        try:
            yield
        finally:
            ctx.close()

    app = FastAPI(
        title="polyrec",
        version=polyrec_version(),
        description="Multimodal recommendations: items, events, recommendations, similar items and search.",
        lifespan=lifespan,
        docs_url=None,  # served by api_docs from local files, not a CDN
        redoc_url=None,
    )
    app.state.polyrec = ctx
    app.add_middleware(FastRecommend, context=ctx)  # innermost: size, key, host and CORS checks run first
    app.add_middleware(BodySizeLimit, limits=limits)
    # outside the size limit, so a request without a key is refused before its body is read
    app.add_middleware(AccessGuard, keys=access.keys, allowed_hosts=access.allowed_hosts)
    if access.cors_origins:  # outermost: a preflight (which carries no key) is answered here
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(access.cors_origins),
            allow_methods=["*"],
            allow_headers=["authorization", "x-api-key", "content-type"],
        )
    install_error_handlers(app)
    security = api_key_dependencies() if access.keys else []  # the "Authorize" button of /docs
    for module in (routes_items, routes_users, routes_user_attributes, routes_search):
        app.include_router(module.router, dependencies=security)
    _add_service_routes(app)
    install_api_docs(app)  # before the web page: its assets live under /static/
    _add_web_page(app)
    return app


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/health", tags=["service"], summary="Liveness and store counts")
    def health(ctx: Context) -> JSONResponse:
        engine = ctx.engine
        body: dict[str, Any] = {"status": "ok", "version": polyrec_version(), "store": engine.settings.store.plugin}
        try:
            body["items"] = engine.count()
            body["events"] = engine.event_count()
        except PolyrecError as exc:  # the store cannot be read as configured (e.g. provenance mismatch)
            status = max(503, status_of(exc))
            return JSONResponse({**body, "status": "error", "detail": public_detail(exc, status)}, status_code=status)
        return JSONResponse(body)

    @app.get("/plugins", tags=["service"], summary="Configured and registered components")
    def plugins(ctx: Context) -> dict[str, Any]:
        from polyrec.engine.cli.plugins_cmd import registry_report

        return {"configured": ctx.engine.components(), **registry_report(ctx.engine.registry)}


def _add_web_page(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
