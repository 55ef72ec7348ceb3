"""CLI commands: plan, apply, state."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from syncdsl.apply.executor import ApplyReport
from syncdsl.cli.core import DataRoot, PathsArg, boundary, json_printed
from syncdsl.cli.planout import Output, fail, failures, spec_arg
from syncdsl.errors import SyncdslError, UsageError
from syncdsl.lang.ir import Spec
from syncdsl.lang.load import load_spec
from syncdsl.plan.definition import Plan, PlanOptions
from syncdsl.plan.planfile import is_plan_file, load_plan, save_plan
from syncdsl.render.render import Style, ansi, plain, render_report, render_text
from syncdsl.safefile import refuse_symlink
from syncdsl.session import (
    LOCAL_STATE_KEY,
    Session,
    apply_plan,
    applying,
    check_saved,
    finish_apply,
    plan_changes,
    planning,
    rebuild_state,
    rejects_path,
    signed_configuration,
    store_location,
)

#: This module's commands; `syncdsl.cli` adds them to the `syncdsl` app.
app = typer.Typer()

Local = Annotated[
    bool,
    typer.Option("--local", help="Run against the embedded local HubSpot (no account needed)."),
]
Refresh = Annotated[
    bool,
    typer.Option(
        "--refresh", help="Read HubSpot itself instead of trusting the state (finds drift)."
    ),
]
AllowMassExit = Annotated[
    bool, typer.Option("--allow-mass-exit", help="Allow exiting more than an audience's threshold.")
]
AllowNewContacts = Annotated[
    bool,
    typer.Option(
        "--allow-new-contacts",
        help="Allow creating more contacts than the new-contact limit (max_new_contacts).",
    ),
]
ExitRemoved = Annotated[
    bool,
    typer.Option(
        "--exit-removed",
        help="Audiences removed from the configuration: set their members to exited, then drop "
        "them from syncdsl.lock.",
    ),
]
ForgetRemoved = Annotated[
    bool,
    typer.Option(
        "--forget-removed",
        help="Audiences removed from the configuration: leave HubSpot as it is and drop them "
        "from syncdsl.lock.",
    ),
]
Full = Annotated[
    bool, typer.Option("--full", help="List every change instead of the first 20 of each kind.")
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Machine-readable output (documented format).")
]
Parallelism = Annotated[
    int, typer.Option("--parallelism", min=1, max=32, help="Batches in flight.")
]
RejectsReplay = Annotated[
    Path | None,
    typer.Option(
        "--rejects-replay",
        help="Read a fixed rejects file (from --rejects) as extra records for this run.",
    ),
]
RejectsOut = Annotated[
    Path | None, typer.Option("--rejects", help="Where to write rejected records (JSONL).")
]


def _style() -> Style:
    return ansi if sys.stdout.isatty() else plain


@app.command()
@boundary
def plan(
    paths: PathsArg,
    refresh: Refresh = False,
    as_json: AsJson = False,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            help="A Markdown summary for pull requests (also written, with the error, when the "
            "plan fails).",
        ),
    ] = False,
    redact: Annotated[
        bool,
        typer.Option(
            "--redact",
            help="Mask emails (a•••@example.com) and replace values by their type and length.",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the plan for `syncdsl apply FILE`.")
    ] = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 when no changes, 2 when changes, 1 on error."
        ),
    ] = False,
    full: Full = False,
    lock_readonly: Annotated[
        bool,
        typer.Option(
            "--lock-readonly",
            help="Fail when syncdsl.lock is out of date with the configuration (for CI; "
            "`syncdsl lock` updates it).",
        ),
    ] = False,
    fail_on_rejects: Annotated[
        bool,
        typer.Option(
            "--fail-on-rejects",
            help="Exit 1 when more than N records are rejected: --fail-on-rejects=N "
            "(or --max-rejects N; N defaults to 0).",
        ),
    ] = False,
    max_rejects: Annotated[
        int | None,
        typer.Option("--max-rejects", help="The N of --fail-on-rejects (implies it)."),
    ] = None,
    allow_mass_exit: AllowMassExit = False,
    allow_new_contacts: AllowNewContacts = False,
    exit_removed: ExitRemoved = False,
    forget_removed: ForgetRemoved = False,
    rejects_replay: RejectsReplay = None,
    local: Local = False,
    data_root: DataRoot = None,
) -> None:
    """Show exactly what `apply` would change in HubSpot, record by record. Never writes to HubSpot."""
    output = Output(as_json=as_json, markdown=markdown, redact=redact, full=full)
    if max_rejects is not None and max_rejects < 0:
        raise UsageError(f"--fail-on-rejects={max_rejects}: N must be 0 or more")
    options = PlanOptions(
        refresh=refresh,
        allow_mass_exit=allow_mass_exit,
        allow_new_contacts=allow_new_contacts,
        exit_removed=exit_removed,
        forget_removed=forget_removed,
        rejects_replay=rejects_replay,
    )
    try:
        if out is not None:
            refuse_symlink(out)  # before planning, not after
        spec = load_spec(paths, data_root=data_root)
        with planning(spec, local=local) as session:
            result = plan_changes(session, options)
            plan_key = session.store.plan_key() if out is not None else b""
    except SyncdslError as error:
        output.failure(error)
        raise
    result.desired.close()
    the_plan = result.plan
    limit = max_rejects if max_rejects is not None else 0 if fail_on_rejects else None
    problems = failures(spec, the_plan, lock_readonly=lock_readonly, max_rejects=limit)
    if out is not None and the_plan.refusal() is None:
        save_plan(the_plan, out, configuration=str(_config_path(paths)), key=plan_key)
    output.show(the_plan, configuration=_config_path(paths), failures=problems)
    if out is not None and not problems and not as_json and not markdown:
        typer.echo(
            f"\nSaved the plan to {out}. Apply exactly this plan with: syncdsl apply {out}"
            + (" --local" if local else "")
        )
    if problems:
        fail(problems, redact=redact)
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)


def _config_path(paths: list[Path]) -> Path:
    return paths[0].resolve() if len(paths) == 1 else paths[0].resolve().parent


@app.command()
@boundary
def apply(
    paths: PathsArg,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Apply without asking for confirmation.")
    ] = False,
    refresh: Refresh = False,
    as_json: AsJson = False,
    full: Full = False,
    parallelism: Parallelism = 8,
    allow_mass_exit: AllowMassExit = False,
    allow_new_contacts: AllowNewContacts = False,
    exit_removed: ExitRemoved = False,
    forget_removed: ForgetRemoved = False,
    rejects: RejectsOut = None,
    rejects_replay: RejectsReplay = None,
    local: Local = False,
    data_root: DataRoot = None,
) -> None:
    """Make HubSpot match the configuration (or apply a saved plan file exactly)."""
    strays = [p for p in paths if p.is_file() and p.suffix != ".sync" and not is_plan_file(p)]
    if strays:
        raise UsageError(
            f"{strays[0]} is neither a saved plan (from `syncdsl plan --out FILE`) nor a .sync "
            "configuration"
        )
    if len(paths) == 1 and is_plan_file(paths[0]):
        if rejects_replay is not None:
            raise UsageError(
                "--rejects-replay reads records while planning; a saved plan is applied as it "
                "is: make the plan with `syncdsl plan PATH --rejects-replay FILE --out PLAN`"
            )
        _apply_saved(
            paths[0],
            as_json=as_json,
            parallelism=parallelism,
            rejects=rejects,
            local=local,
            data_root=data_root,
        )
        return
    spec = load_spec(paths, data_root=data_root)
    refuse_symlink(rejects_path(spec, rejects))  # before HubSpot is written, not after
    options = PlanOptions(
        refresh=refresh,
        allow_mass_exit=allow_mass_exit,
        allow_new_contacts=allow_new_contacts,
        exit_removed=exit_removed,
        forget_removed=forget_removed,
        rejects_replay=rejects_replay,
    )
    with applying(spec, local=local, parallelism=parallelism) as session:
        result = plan_changes(session, options)
        the_plan = result.plan
        if not as_json:
            typer.echo(render_text(the_plan, style=_style(), full=full))
        refusal = the_plan.refusal()  # the plan is shown first, then the guard refuses
        if refusal is not None:
            raise refusal
        # Nothing to write to HubSpot or the lock: nothing to confirm (adoptions only touch
        # the local state).
        if the_plan.has_changes and not auto_approve:
            _confirm()
        report = _execute(session, the_plan, parallelism=parallelism, quiet=as_json)
        written = finish_apply(session, the_plan, report, desired=result.desired, rejects=rejects)
        _report(spec, report, written, as_json=as_json)


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise UsageError(
            "refusing to apply without confirmation: there is no terminal to ask on. "
            "Review the plan above, then rerun with --auto-approve (or save it with "
            "`syncdsl plan --out FILE` and run `syncdsl apply FILE`)."
        )
    answer = typer.prompt(
        "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n"
        "  Enter a value",
        default="",
        show_default=False,
    )
    if answer.strip() != "yes":
        typer.echo("Apply cancelled.", err=True)
        raise typer.Exit(1)


def _execute(session: Session, plan: Plan, *, parallelism: int, quiet: bool) -> ApplyReport:
    """Apply the plan, with a progress bar on a terminal for long applies."""
    total = len(plan.contact_changes)
    if quiet or not sys.stderr.isatty() or total < 200:
        return apply_plan(session, plan, parallelism=parallelism)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(
        "[progress.description]{task.description}",
        *columns,
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("contacts", total=total, rate="")

        def advance(count: int) -> None:
            bar.advance(task, count)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:,.0f} contacts/s" if speed else "")

        return apply_plan(session, plan, parallelism=parallelism, progress=advance)


def _report(spec: Spec, report: ApplyReport, written: tuple[Path, int], *, as_json: bool) -> None:
    """Print the apply report (and where its rejects went); raise if the apply stopped."""
    path, count = written
    if as_json:
        typer.echo(
            json.dumps(
                {**report.to_dict(), "rejects_file": str(path) if count else None},
                indent=2,
                sort_keys=True,
                default=str,
            )
        )
        json_printed()  # a stopped apply's error is in the report already
    else:
        typer.echo("\n" + render_report(report, style=_style()))
        if count and any(r.source != "hubspot" for r in report.rejected):
            typer.echo(
                f"Rejected records written to {path}: fix each `record` there, then replay them "
                f"with `syncdsl apply {spec_arg(spec)} --rejects-replay {path}` (or fix the "
                "source data)."
            )
        elif count:  # only HubSpot's refusals: there is no record to replay
            typer.echo(
                f"HubSpot's refusals written to {path}: fix those contacts in the source data "
                "(or in HubSpot), then apply again."
            )
    stopped = report.stopped_error()
    if stopped is not None:
        raise stopped


def _apply_saved(
    plan_path: Path,
    *,
    as_json: bool,
    parallelism: int,
    rejects: Path | None,
    local: bool,
    data_root: Path | None,
) -> None:
    saved = load_plan(plan_path)
    the_plan = saved.plan
    spec = load_spec([signed_configuration(saved)], data_root=data_root)
    refuse_symlink(rejects_path(spec, rejects))
    # A plan made against the embedded local HubSpot is applied there (it remembers its target).
    local = local or the_plan.fingerprint.base_url == LOCAL_STATE_KEY
    with applying(spec, local=local, parallelism=parallelism) as session:
        check_saved(session, the_plan)
        report = _execute(session, the_plan, parallelism=parallelism, quiet=as_json)
        written = finish_apply(session, the_plan, report, desired=None, rejects=rejects)
        _report(spec, report, written, as_json=as_json)


@app.command()
@boundary
def state(
    paths: PathsArg,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rebuild the state from HubSpot.")
    ] = False,
    as_json: AsJson = False,
    local: Local = False,
    data_root: DataRoot = None,
) -> None:
    """Show what syncdsl last applied (contacts tracked, last apply, schema), or rebuild it."""
    spec = load_spec(paths, data_root=data_root)
    if rebuild:
        with applying(spec, local=local, writes=False) as session:
            rebuilt = rebuild_state(session)
        typer.echo(f"Rebuilt the state from HubSpot: {rebuilt:,} contacts tracked.", err=as_json)
    with store_location(spec).state() as store:
        summary = store.summary()
    if as_json:
        typer.echo(json.dumps(asdict(summary), indent=2, sort_keys=True))
        return
    typer.echo(f"State: {summary.path}")
    where = (
        "the embedded local HubSpot (--local)"
        if summary.base_url == LOCAL_STATE_KEY
        else summary.base_url or "(not yet applied)"
    )
    typer.echo(f"  HubSpot:        {where}")
    typer.echo(f"  Lineage/serial: {summary.lineage} / {summary.serial}")
    typer.echo(f"  Last apply:     {summary.last_apply or 'never'}")
    typer.echo(f"  Contacts:       {summary.contacts:,}")
    for prop, statuses in sorted(summary.members.items()):
        counts = ", ".join(f"{count:,} {status}" for status, count in sorted(statuses.items()))
        typer.echo(f"  Audience {prop}: {counts}")
    if summary.schema:
        typer.echo("  Schema created: " + ", ".join(summary.schema))
