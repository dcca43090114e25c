"""A real S3 server for the tests: moto's ``moto_server`` (from PyPI) on a free 127.0.0.1 port,
one per test session (``tests/conftest.py`` makes :func:`s3_endpoint` a session fixture), with
the bucket :data:`BUCKET` made; nothing leaves the machine. Stopped at the end of the session."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["BUCKET", "s3_client", "s3_endpoint", "storage_options"]

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
BUCKET = "polyrec"
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def storage_options(endpoint: str) -> dict[str, str]:
    """The store's ``storage_options`` for the local server (LanceDB's keys)."""
    return {
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "region": "us-east-1",
        "endpoint": endpoint,
        "allow_http": "true",
    }


def s3_client(endpoint: str) -> object:
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("boto3", reason="moto[server] is not installed (pip install 'polyrec[dev]')")
    if not MOTO_SERVER.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    server = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"moto_server did not start on {endpoint}")
                time.sleep(0.1)
        s3_client(endpoint).create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
