"""Static checks of parsed .sync files, and construction of the IR when they all pass.

Each block kind has its checks in its own module (`check_destination`, `check_source`,
`check_audience`, `check_property`), all on one diagnostics collector (`check_base.Checker`);
this module walks the documents and makes the cross-block checks.
"""

from __future__ import annotations

from pathlib import Path

from syncdsl.errors import Diagnostic
from syncdsl.lang.check_audience import AudienceChecks
from syncdsl.lang.check_base import TOP_BLOCKS, nowhere, where_of
from syncdsl.lang.check_destination import DestinationChecks
from syncdsl.lang.check_property import PropertyChecks
from syncdsl.lang.check_source import SourceChecks
from syncdsl.lang.diagnostics import did_you_mean, one_of
from syncdsl.lang.ir import (
    Audience,
    Destination,
    PropertyDecl,
    Source,
    Spec,
)
from syncdsl.lang.syntax import (
    Attribute,
    Block,
    Document,
)


class _Checker(DestinationChecks, SourceChecks, AudienceChecks, PropertyChecks):
    """Every block's checks, on one collector."""


def build_spec(
    documents: list[Document],
    *,
    files: tuple[Path, ...],
    root: Path,
    data_root: Path | None = None,
) -> tuple[Spec | None, list[Diagnostic]]:
    """Check `documents` as one configuration; return the Spec, or None and every problem found.

    Data files must lie inside `root` or, when the operator allows one, `data_root`.
    """
    checker = _Checker(root, data_root)
    blocks: dict[str, list[Block]] = {kind: [] for kind in TOP_BLOCKS}
    for document in documents:
        for item in document.items:
            if isinstance(item, Attribute):
                checker.error(
                    item.name_span,
                    f"`{item.name}` is outside any block; attributes belong inside "
                    "`destination`, `source`, `audience` or `property` blocks",
                )
            elif item.type not in blocks:
                hint = did_you_mean(item.type, TOP_BLOCKS)
                checker.error(
                    item.type_span,
                    f"unknown block `{item.type}`{hint}; blocks are {one_of(TOP_BLOCKS)}",
                )
            else:
                blocks[item.type].append(item)
    anchor = documents[0].file if documents else str(root)
    destination = _one_destination(checker, blocks["destination"], anchor)
    sources = _sources(checker, blocks["source"], anchor)
    audiences = tuple(
        audience
        for block in blocks["audience"]
        if (audience := checker.audience(block, sources)) is not None
    )
    properties = tuple(
        decl for block in blocks["property"] if (decl := checker.property_decl(block)) is not None
    )
    _cross_checks(checker, audiences, properties, sources)
    if checker.diagnostics or destination is None:
        return None, checker.diagnostics
    spec = Spec(
        destination=destination,
        sources=tuple(source for source in sources.values() if source is not None),
        audiences=audiences,
        properties=properties,
        files=files,
        root=root,
    )
    return spec, []


def _one_destination(checker: _Checker, blocks: list[Block], anchor: str) -> Destination | None:
    if not blocks:
        checker.error(
            nowhere(anchor),
            'no destination: add `destination hubspot { token = env("HUBSPOT_TOKEN") }`',
        )
        return None
    for extra in blocks[1:]:
        checker.error(
            extra.type_span,
            f"a configuration has exactly one destination; the first is at {where_of(blocks[0].span)}",
        )
    return checker.destination(blocks[0])


def _sources(checker: _Checker, blocks: list[Block], anchor: str) -> dict[str, Source | None]:
    if not blocks:
        checker.error(nowhere(anchor), 'no source: add a `source NAME { jsonl = "..." ... }` block')
    sources: dict[str, Source | None] = {}
    first: dict[str, Block] = {}
    for block in blocks:
        name = block.label
        if name is not None and name in first:
            assert block.label_span is not None
            checker.error(
                block.label_span,
                f"source `{name}` is declared twice (first at {where_of(first[name].span)})",
            )
            checker.source(block, block.span.file)
            continue
        source = checker.source(block, block.span.file)
        if name is not None:
            first[name] = block
            sources[name] = source
    return sources


def _cross_checks(
    checker: _Checker,
    audiences: tuple[Audience, ...],
    properties: tuple[PropertyDecl, ...],
    sources: dict[str, Source | None],
) -> None:
    by_property: dict[str, Audience] = {}
    by_key: dict[str, Audience] = {}
    for audience in audiences:
        other = by_property.get(audience.property)
        if other is not None:
            checker.error(
                audience.span,
                f'audiences "{other.name}" and "{audience.name}" both write HubSpot property '
                f'`{audience.property}`; give one a different `property = "..."`',
            )
        by_property.setdefault(audience.property, audience)
        twin = by_key.get(audience.key)
        if twin is not None:
            what = (
                f"segment `{audience.segment}`"
                if audience.segment
                else f"upload `{audience.source}`"
            )
            checker.error(
                audience.span,
                f'{what} already feeds audience "{twin.name}" ({where_of(twin.span)}); '
                "one segment or upload feeds one audience",
            )
        by_key.setdefault(audience.key, audience)
    for source in sources.values():
        for mapping in source.mappings if source is not None else ():
            if mapping.property in by_property:
                owner = by_property[mapping.property].name
                checker.error(
                    mapping.span,
                    f'`{mapping.property}` is the property of audience "{owner}"; syncdsl manages it, '
                    "so it cannot be mapped too",
                )
    declared: dict[str, PropertyDecl] = {}
    for decl in properties:
        if decl.name in declared:
            checker.error(
                decl.span,
                f'property "{decl.name}" is declared twice (first at {where_of(declared[decl.name].span)})',
            )
        elif decl.name in by_property:
            checker.error(
                decl.span,
                f'property "{decl.name}" belongs to audience "{by_property[decl.name].name}", '
                "which creates it; remove this declaration",
            )
        declared.setdefault(decl.name, decl)
