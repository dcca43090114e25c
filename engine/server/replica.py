"""``polyrec serve --workers N``: the app each of uvicorn's worker processes builds for itself.

uvicorn starts every worker as a fresh process that imports an app factory by name, so the
serve command passes the config and limits in an environment variable. Each replica opens
the same store; what one writes the others read within the store's read-consistency interval
(LanceDB: ``read_consistency_s``, 5 s by default), and every write is committed to the store
before it is acknowledged, so a replica that dies loses nothing it answered. Each replica
loads the trained state of a ``polyrec fit`` run anywhere on the store, and follows the
others' events and items in what it derives from them, without a restart (:mod:`.reload`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from polyrec.engine.server.limits import ServerLimits

__all__ = ["ENVIRONMENT_KEY", "app_from_environment", "replica_environment"]

ENVIRONMENT_KEY = "POLYREC_SERVE_REPLICA"
#: what uvicorn imports in each worker
FACTORY = "polyrec.engine.server.replica:app_from_environment"


def replica_environment(config: Path, limits: ServerLimits) -> str:
    return json.dumps({"config": str(Path(config).absolute()), "limits": limits.model_dump(mode="json")})


def app_from_environment() -> FastAPI:
    from polyrec.contracts import PolyrecError
    from polyrec.engine.server.app import create_app
    from polyrec.engine.server.limits import ServerLimits

    spec = os.environ.get(ENVIRONMENT_KEY)
    if spec is None:
        raise PolyrecError(f"{ENVIRONMENT_KEY} is not set: start replicas with `polyrec serve --workers N`")
    values = json.loads(spec)
    return create_app(values["config"], limits=ServerLimits.model_validate(values["limits"]))
