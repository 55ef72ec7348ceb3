"""What `syncdsl plan` prints and why it fails: formats, redaction, and the CI failures
(guards, an out-of-date lock, too many rejects) that are reported after the plan."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from syncdsl.cli.core import json_printed
from syncdsl.cli.lock import outdated_lock
from syncdsl.errors import SpecError, SyncdslError, UsageError
from syncdsl.lang.ir import Spec
from syncdsl.plan.definition import Plan
from syncdsl.plan.planfile import write_plan
from syncdsl.render.redact import redact_plan, redact_text
from syncdsl.render.render import ansi, plain, render_markdown, render_markdown_failure, render_text
from syncdsl.scrub import shown_reason

FIRST_REJECTS = 5


@dataclass(frozen=True)
class Output:
    """How the plan is shown: text (default), `--json` or `--markdown`; `--redact`, `--full`."""

    as_json: bool = False
    markdown: bool = False
    redact: bool = False
    full: bool = False

    def __post_init__(self) -> None:
        if self.as_json and self.markdown:
            raise UsageError(
                "--json and --markdown are two formats of the same output: choose one (save a "
                "plan with --out FILE and render it again to have both)"
            )

    def failure(self, error: SyncdslError) -> None:
        """When no plan could be made: the Markdown still says why (stdout, for the PR)."""
        if self.markdown:
            text = error.rendered if isinstance(error, SpecError) else f"Error: {error}"
            typer.echo(render_markdown_failure(text, redact=self.redact))

    def show(self, plan: Plan, *, configuration: Path, failures: list[str]) -> None:
        shown = redact_plan(plan) if self.redact else plan
        errors = [redact_text(f) for f in failures] if self.redact else failures
        if self.as_json:
            write_plan(
                shown, sys.stdout, configuration=str(configuration), extra={"errors": errors}
            )
            sys.stdout.flush()
            json_printed()
        elif self.markdown:
            typer.echo(render_markdown(shown, full=self.full, errors=errors))
        else:
            style = ansi if sys.stdout.isatty() else plain
            typer.echo(render_text(shown, style=style, full=self.full))


def spec_arg(spec: Spec) -> str:
    """The configuration as a command-line argument: relative to the working directory if it
    can be."""
    try:
        return str(spec.root.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(spec.root)


def failures(spec: Spec, plan: Plan, *, lock_readonly: bool, max_rejects: int | None) -> list[str]:
    """Why this plan makes the run fail (exit 1), after it is shown; empty when it does not."""
    problems = []
    refusal = plan.refusal()
    if refusal is not None:
        problems.append(str(refusal))
    if lock_readonly:
        stale = outdated_lock(spec)
        if stale:
            problems.append(
                "syncdsl.lock is out of date with the configuration and --lock-readonly is set ("
                + "; ".join(stale)
                + f"): run `syncdsl lock {spec_arg(spec)}` and commit syncdsl.lock"
            )
    if max_rejects is not None and len(plan.rejected) > max_rejects:
        first = "; ".join(
            f"{r.file}:{r.line} {shown_reason(r.reason)}" for r in plan.rejected[:FIRST_REJECTS]
        )
        more = " …" if len(plan.rejected) > FIRST_REJECTS else ""
        problems.append(
            f"{len(plan.rejected):,} records rejected, more than --fail-on-rejects allows "
            f"({max_rejects:,}); first: {first}{more}"
        )
    return problems


def fail(problems: list[str], *, redact: bool) -> None:
    """Print each failure on stderr and exit 1."""
    for problem in problems:
        typer.echo(f"Error: {redact_text(problem) if redact else problem}", err=True)
    raise typer.Exit(1)
