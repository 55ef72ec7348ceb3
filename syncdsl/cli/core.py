"""The `syncdsl` command line: one error boundary around every command."""

from __future__ import annotations

import errno
import functools
import json
import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core

from syncdsl import __version__
from syncdsl.errors import ErrorReport, SpecError, SyncdslError
from syncdsl.scrub import scrub

app = typer.Typer(
    name="syncdsl",
    help="Activate CDP audiences into HubSpot, declaratively.",
    epilog="Credentials: a HubSpot service key (Development > Keys > Service keys) or a (legacy) "
    "private-app access token, read from the environment variable the spec names "
    '(token = env("HUBSPOT_TOKEN")) and sent as Bearer; scopes crm.objects.contacts.read/write '
    "and crm.schemas.contacts.read/write. --local needs none.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def boundary(func: F) -> F:
    """Turn every SyncdslError into `Error: ...` on stderr and its exit code; --debug re-raises.

    Under `--json`, a command that fails before printing its document prints an `ErrorReport`
    on stdout instead, so that what reads the JSON learns why.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _JSON["printed"] = False
        # With --markdown too, stdout is a pull-request comment: no JSON goes there.
        as_json = bool(kwargs.get("as_json")) and not kwargs.get("markdown")
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except SpecError as error:
            if _debugging():
                raise
            typer.echo(scrub(error.rendered), err=True)
            _json_error(as_json, ErrorReport.of(error))
            raise typer.Exit(1) from None
        except SyncdslError as error:
            if _debugging():
                raise
            typer.echo(scrub(f"Error: {error}"), err=True)
            _json_error(as_json, ErrorReport.of(error))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        except (OSError, sqlite3.OperationalError) as error:
            message = environment_error(error)
            if message is None or _debugging():
                raise
            typer.echo(f"Error: {message}", err=True)
            _json_error(as_json, ErrorReport("EnvironmentError", message, 1))
            raise typer.Exit(1) from None
        except Exception as error:
            if _debugging():
                raise
            typer.echo(
                scrub(
                    f"Error: internal error: {type(error).__name__}: {error}\n"
                    "Run again with `syncdsl --debug <command> ...` for the traceback, and please report it."
                ),
                err=True,
            )
            _json_error(as_json, ErrorReport.of(error))
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


_JSON = {"printed": False}


def json_printed() -> None:
    """Say that this command printed its JSON document (a later error adds no second one)."""
    _JSON["printed"] = True


def _json_error(as_json: bool, report: ErrorReport) -> None:
    if as_json and not _JSON["printed"]:
        typer.echo(scrub(json.dumps(report.to_dict(), indent=2, sort_keys=True)))


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_WORDS = ("disk is full", "readonly database", "unable to open database", "disk i/o error")


def environment_error(error: OSError | sqlite3.OperationalError) -> str | None:
    """What to tell the user when the machine (not syncdsl) refused a file operation; None for
    errors that are not about files (those stay internal errors)."""
    if isinstance(error, sqlite3.OperationalError):
        text = str(error)
        if not any(word in text for word in _SQLITE_WORDS):
            return None
        hint = "free some space" if "full" in text else "make .syncdsl/ writable"
        return (
            f"the state store could not be written ({text}): {hint} and run the command again; "
            "an interrupted apply resumes where it stopped"
        )
    where = f" {error.filename}" if error.filename else ""
    reason = error.strerror or str(error)
    if error.errno in _DISK_FULL:
        return (
            f"cannot write{where}: {reason}: free some space and run the command again; an "
            "interrupted apply resumes where it stopped"
        )
    if error.filename is None:
        return None
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"cannot write{where}: {reason}: make it (and its directory) writable, then run the "
            "command again"
        )
    return f"cannot use{where}: {reason}: check that it is a writable file or directory"


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


#: Options that take an optional value, `--NAME=N`, spelled for typer as a flag plus an option.
OPTIONAL_VALUES = {"--fail-on-rejects": "--max-rejects"}


def expand_optional_values(args: list[str]) -> list[str]:
    """`--fail-on-rejects=3` -> `--fail-on-rejects --max-rejects 3` (typer has no options whose
    value is optional; the bare flag keeps its default)."""
    expanded: list[str] = []
    for arg in args:
        if arg == "--":
            expanded += args[len(expanded) :]
            break
        name, equals, value = arg.partition("=")
        if equals and name in OPTIONAL_VALUES:
            expanded += [name, OPTIONAL_VALUES[name], value]
        else:
            expanded.append(arg)
    return expanded


def _flag_display(original: Callable[..., Any]) -> Callable[..., Any]:
    """`--help` lists a boolean flag as `--full`, not `--full <bool>`: a flag takes no value."""

    def display(self: Any, ctx: Any) -> Any:
        return None if getattr(self, "is_flag", False) else original(self, ctx)

    return display


def _fix_flag_help() -> None:
    option = getattr(typer.core, "TyperOption", None)
    if option is not None and hasattr(option, "display_type_rich"):
        option.display_type_rich = _flag_display(option.display_type_rich)


_fix_flag_help()


def main() -> None:
    """Console-script entry point."""
    try:
        app(args=expand_optional_values(sys.argv[1:]))
    except SyncdslError as error:  # only under --debug does the boundary let one through
        sys.stderr.write(scrub(traceback.format_exc()))
        typer.echo(scrub(f"Error: {error}"), err=True)
        sys.exit(error.exit_code)
    except Exception:  # noqa: BLE001 - --debug re-raised it: print it, secrets scrubbed
        sys.stderr.write(scrub(traceback.format_exc()))
        sys.exit(3)


_DEBUG = {"on": False}  # set by the root callback from `syncdsl --debug` (typer holds no state)


def _debugging() -> bool:
    """Whether the running command was started with `syncdsl --debug`."""
    return _DEBUG["on"]


# Shared by the command modules (syncdsl/cli/*.py).
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
