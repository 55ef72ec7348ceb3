"""The `syncdsl` command line: one error boundary around every command."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from syncdsl import __version__
from syncdsl.errors import SpecError, SyncdslError
from syncdsl.redact import scrub

app = typer.Typer(
    name="syncdsl",
    help="Activate CDP audiences into HubSpot, declaratively.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
_DEBUG = {"on": False}


def boundary(func: F) -> F:
    """Turn every SyncdslError into `Error: ...` on stderr and its exit code; --debug re-raises."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except SpecError as error:
            if _DEBUG["on"]:
                raise
            typer.echo(scrub(error.rendered), err=True)
            raise typer.Exit(1) from None
        except SyncdslError as error:
            if _DEBUG["on"]:
                raise
            typer.echo(scrub(f"Error: {error}"), err=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        except Exception as error:
            if _DEBUG["on"]:
                raise
            typer.echo(
                scrub(
                    f"Error: internal error: {type(error).__name__}: {error}\n"
                    "Run again with --debug for the traceback, and please report it."
                ),
                err=True,
            )
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"syncdsl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show Python tracebacks on errors.")
    ] = False,
) -> None:
    """Activate CDP audiences into HubSpot, declaratively."""
    _DEBUG["on"] = debug


def main() -> None:
    """Console-script entry point."""
    if "--debug" in sys.argv:
        _DEBUG["on"] = True
    try:
        app()
    except SyncdslError as error:  # raised outside a command (should not happen)
        if _DEBUG["on"]:
            sys.stderr.write(scrub(traceback.format_exc()))
        typer.echo(scrub(f"Error: {error}"), err=True)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - --debug re-raised it: print it, secrets scrubbed
        sys.stderr.write(scrub(traceback.format_exc()))
        sys.exit(3)


# Commands live in their own small modules and register themselves here.
PathsArg = Annotated[list[Path], typer.Argument(help="A .sync file or a directory of them.")]
DataRoot = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        envvar="SYNCDSL_DATA_ROOT",
        help="Also allow data files inside DIR (default: only inside the configuration's "
        "directory).",
    ),
]

# Imported last: each module adds its commands to `app` (keeps this file small).
from syncdsl.commands import register_all  # noqa: E402

register_all()
