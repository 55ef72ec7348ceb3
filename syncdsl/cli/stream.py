"""CLI commands: stream."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from syncdsl.cli.core import DataRoot, PathsArg, boundary
from syncdsl.cli.run import Local
from syncdsl.errors import SyncdslError

if TYPE_CHECKING:  # the stream's stack is imported when a stream starts, not for every command
    from syncdsl.lang.ir import Spec
    from syncdsl.stream import StreamOptions

#: This module's commands; `syncdsl.cli` adds them to the `syncdsl` app.
app = typer.Typer()


def _ingest_token(variable: str | None) -> str | None:
    if variable is None:
        return None
    token = os.environ.get(variable, "").strip()
    if not token:
        raise SyncdslError(
            f"--ingest-token-env {variable}: the environment variable is not set; "
            f"export the intake's shared secret in it (`export {variable}=...`)"
        )
    return token


@app.command()
@boundary
def stream(
    paths: PathsArg,
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, help="HTTP port for intake, /status and /metrics."
        ),
    ] = 8787,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    input_path: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="Also read newline-delimited JSON profiles from FILE (followed like "
            "tail -f) or - (stdin, until EOF).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Source for events that name none (default: the only jsonl source)."
        ),
    ] = None,
    ingest_token_env: Annotated[
        str | None,
        typer.Option(
            "--ingest-token-env",
            help="Require `Authorization: Bearer <secret>` on intake; the "
            "secret is read from this environment variable.",
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="Accept posts from web pages of this origin (scheme://host[:port]; "
            "repeatable). Requests with any other Origin header get 403.",
        ),
    ] = None,
    window_ms: Annotated[
        int, typer.Option("--window-ms", min=0, max=60_000, help="Coalescing window per batch.")
    ] = 250,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue", min=1, help="Answer 429 while more events than this are queued."
        ),
    ] = 100_000,
    max_body: Annotated[
        int, typer.Option("--max-body", min=1, help="Largest intake body in bytes (413 beyond).")
    ] = 10 * 1024 * 1024,
    parallelism: Annotated[
        int, typer.Option("--parallelism", min=1, max=32, help="Batches in flight.")
    ] = 4,
    grace_seconds: Annotated[
        float,
        typer.Option("--grace-seconds", min=0, help="On SIGTERM/Ctrl-C, how long to keep sending."),
    ] = 10.0,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects", help="Rejected events (JSONL; default .syncdsl/stream-rejects.jsonl)."
        ),
    ] = None,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout",
            min=0.1,
            help="Close a connection idle this many seconds (keep above a load balancer's).",
        ),
    ] = 5.0,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout", min=0.1, help="Seconds a request has to arrive whole (408 after)."
        ),
    ] = 30.0,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections",
            min=16,
            help="Open connections at most (default 10,000, less under a low `ulimit -n`).",
        ),
    ] = None,
    unhealthy_after: Annotated[
        float,
        typer.Option(
            "--unhealthy-after",
            min=1,
            help="After this many seconds of HubSpot failing (from its first failed call, "
            "retries included), intake answers 503.",
        ),
    ] = 300.0,
    local: Local = False,
    data_root: DataRoot = None,
) -> None:
    """Stream profiles to HubSpot as they arrive (HTTP or --input), durably, until stopped."""
    from syncdsl.lang.load import load_spec
    from syncdsl.stream import StreamOptions
    from syncdsl.stream.service import allowed_origins

    origins = allowed_origins(tuple(allow_origin or ()))
    spec = load_spec(paths, data_root=data_root)
    if input_path not in (None, "-") and not Path(str(input_path)).exists():
        typer.echo(
            f"Warning: --input {input_path} does not exist (yet): waiting for it to appear, "
            "then following it (like `tail -F`).",
            err=True,
        )
    options = StreamOptions(
        host=host,
        port=port,
        input=input_path,
        ingest_token=_ingest_token(ingest_token_env),
        window_seconds=window_ms / 1000.0,
        max_queue=max_queue,
        max_body=max_body,
        parallelism=parallelism,
        grace_seconds=grace_seconds,
        rejects=rejects,
        source=source,
        idle_timeout=idle_timeout,
        read_timeout=read_timeout,
        max_connections=max_connections,
        unhealthy_after=unhealthy_after,
        allow_origins=origins,
    )
    _serve(spec, options, local=local)


def _serve(spec: Spec, options: StreamOptions, *, local: bool) -> None:
    """Run the stream until SIGTERM or Ctrl-C, then drain it (for up to its grace period)."""
    from contextlib import nullcontext

    from syncdsl.session import connect, store_location
    from syncdsl.state.locks import ApplyLock
    from syncdsl.stream import StreamService

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        # In a shared store replicas run side by side: the service sends under the portal's
        # lease instead of holding the configuration's directory.
        replica = store_location(spec).shared and not local
        with (
            nullcontext(None) if replica else ApplyLock(spec.root) as lock,
            connect(spec, local=local, parallelism=options.parallelism, held=lock) as target,
        ):
            service = StreamService(spec, target, options, lock=lock)
            url = service.start()
            typer.echo(
                f"Listening on {url} (POST {url}/v1/profiles; GET /status, /metrics, /healthz)"
            )
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            typer.echo("Stopping: draining the queue...", err=True)
            drained = service.stop()
            left = service.queue_depth
            typer.echo(
                "Stopped; every event was settled (sent to HubSpot, or rejected to the rejects file)."
                if drained
                else f"Stopped; {left:,} events stay queued for the next start.",
                err=True,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
