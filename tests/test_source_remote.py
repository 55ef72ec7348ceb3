"""Sources in S3, read through fsspec, against moto's S3 server: a real S3 API on the loopback,
started here in its own process. Credentials and the endpoint come from the environment, as
they do for a user; none of it is in the spec."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_source_forms import created, ndjson, plan_json, run, spec, write_parquet

boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")
pytest.importorskip("moto")

SECRET = "moto-secret-key-0123456789"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:  # ready once it accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.05)
    env = {
        "AWS_ACCESS_KEY_ID": "moto-access-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _client(env: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def _upload_export(env: dict[str, str], bucket: str) -> Any:
    client = _client(env)
    client.create_bucket(Bucket=bucket)
    prefix = "aep/ds-1/exportTime=202612010000"
    client.put_object(
        Bucket=bucket,
        Key=f"{prefix}/part-00001-c000.json.gz",
        Body=gzip.compress(ndjson(range(10, 15))),
    )
    client.put_object(
        Bucket=bucket,
        Key=f"{prefix}/part-00000-c000.json.gz",
        Body=gzip.compress(ndjson(range(10))),
    )
    client.put_object(Bucket=bucket, Key=f"{prefix}/_SUCCESS", Body=b"")
    client.put_object(Bucket=bucket, Key=f"{prefix}/.part-00000-c000.json.gz.crc", Body=b"crc")
    return client


def test_an_s3_part_folder_plans_applies_and_goes_stale_when_an_object_changes(
    tmp_path: Path, s3: dict[str, str]
) -> None:
    client = _upload_export(s3, "exports-one")
    (tmp_path / "main.sync").write_text(spec('"s3://exports-one/aep/ds-1/"'))
    assert run(tmp_path, "validate", ".").returncode == 0
    plan = plan_json(tmp_path, env=s3)
    assert plan["inputs"][0]["reading"] == "2 files, gzip"
    assert len(created(plan)) == 15
    first = next(c for c in plan["contact_changes"] if c["email"] == "p0010@example.com")
    assert first["provenance"] == [
        "s3://exports-one/aep/ds-1/exportTime=202612010000/part-00001-c000.json.gz:1"
    ]
    saved = run(tmp_path, "plan", ".", "--local", "--out", "p.plan", env=s3)
    assert saved.returncode == 0, saved.stderr
    client.put_object(
        Bucket="exports-one",
        Key="aep/ds-1/exportTime=202612010000/part-00001-c000.json.gz",
        Body=gzip.compress(ndjson(range(10, 16))),
    )
    stale = run(tmp_path, "apply", "p.plan", "--local", env=s3)
    assert stale.returncode == 1 and "stale" in stale.stderr
    applied = run(tmp_path, "apply", ".", "--local", "--auto-approve", env=s3)
    assert applied.returncode == 0, applied.stderr
    assert "16 created" in applied.stdout
    for output in (plan, saved.stdout, saved.stderr, stale.stderr, applied.stdout, applied.stderr):
        assert SECRET not in str(output)


def test_parquet_in_s3_and_a_glob(tmp_path: Path, s3: dict[str, str]) -> None:
    client = _upload_export(s3, "exports-two")
    write_parquet(tmp_path / "part.parquet", 6)
    client.put_object(
        Bucket="exports-two",
        Key="pq/part-00000.parquet",
        Body=(tmp_path / "part.parquet").read_bytes(),
    )
    (tmp_path / "main.sync").write_text(spec('"s3://exports-two/pq/"', fmt="parquet"))
    plan = plan_json(tmp_path, env=s3)
    assert sorted(created(plan)) == [f"p000{i}@example.com" for i in range(6) if i != 4]
    (tmp_path / "main.sync").write_text(spec('"s3://exports-two/aep/*/*/part-00000-*.json.gz"'))
    assert plan_json(tmp_path, env=s3)["inputs"][0]["records"] == 10


def test_a_missing_bucket_and_inline_credentials_are_errors_for_people(
    tmp_path: Path, s3: dict[str, str]
) -> None:
    (tmp_path / "main.sync").write_text(spec('"s3://no-such-bucket/aep/"'))
    missing = run(tmp_path, "plan", ".", "--local", env=s3)
    assert missing.returncode == 1
    assert "s3://no-such-bucket/aep/" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "main.sync").write_text(spec('"s3://bucket@x/aep/"'))
    inline = run(tmp_path, "validate", ".")
    assert inline.returncode == 1 and "no credentials" in inline.stderr
