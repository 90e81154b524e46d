"""MkDocs hook: the GraphQL reference page, generated from `graphql/schema.graphql` at build time.

Configured in `mkdocs.yml` (`hooks: [docs/hooks/graphql_reference.py]`). The schema file is the
API's contract (generated from the code, and checked against it by a test); this hook parses it
with graphql-core and adds the page `graphql-reference.md` to the site, so the reference is never
typed by hand and cannot drift from the API. The page lists the root operations (queries,
mutations, subscriptions) with their arguments, then every named type by kind, each as a heading
that the type names anywhere on the page link to. Operations and types are sorted by name;
fields, arguments and enum values keep the schema's order: the same schema gives the same page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLType,
    GraphQLUnionType,
    build_schema,
    print_ast,
)
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.livereload import LiveReloadServer
from mkdocs.structure.files import File, Files

SCHEMA = Path("graphql", "schema.graphql")  # relative to the folder of mkdocs.yml
PAGE = "graphql-reference.md"

INTRO = """\
Every query, mutation and type of the API, generated at each build from
`graphql/schema.graphql`, the API's contract: do not edit this page, change the code and
regenerate the schema. How to call the API, with keys, roles and examples:
[GraphQL API](graphql.md). In types, `!` means never null and `[...]` a list."""

# Sections of named types, in page order: title and the graphql-core class of their types.
KINDS: tuple[tuple[str, type[GraphQLNamedType]], ...] = (
    ("Object types", GraphQLObjectType),
    ("Interfaces", GraphQLInterfaceType),
    ("Unions", GraphQLUnionType),
    ("Input types", GraphQLInputObjectType),
    ("Enums", GraphQLEnumType),
    ("Scalars", GraphQLScalarType),
)


def _schema_path(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).parent / SCHEMA


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated reference page to the site's files."""
    schema = build_schema(_schema_path(config).read_text(encoding="utf-8"))
    files.append(File.generated(config, PAGE, content=render(schema)))
    return files


def on_serve(
    server: LiveReloadServer, config: MkDocsConfig, builder: Callable[..., Any]
) -> LiveReloadServer:
    """Under `mkdocs serve`, rebuild when the schema file changes."""
    server.watch(str(_schema_path(config)))
    return server


def render(schema: GraphQLSchema) -> str:
    """The reference page, as Markdown."""
    lines = ["# GraphQL reference", "", INTRO, ""]
    roots = (
        ("Queries", "query", schema.query_type),
        ("Mutations", "mutation", schema.mutation_type),
        ("Subscriptions", "subscription", schema.subscription_type),
    )
    for title, kind, root in roots:
        if root is not None:
            lines += [f"## {title}", ""]
            for name, field in sorted(root.fields.items()):
                lines += _root_field(kind, name, field)
    root_names = {root.name for _, _, root in roots if root is not None}
    named = [
        schema.type_map[name]
        for name in sorted(schema.type_map)
        if not name.startswith("__") and name not in root_names
    ]
    for title, cls in KINDS:
        of_kind = [named_type for named_type in named if isinstance(named_type, cls)]
        if of_kind:
            lines += [f"## {title}", ""]
            for named_type in of_kind:
                lines += _named_type(named_type)
    return "\n".join(lines).rstrip("\n") + "\n"


def _root_field(kind: str, name: str, field: GraphQLField) -> list[str]:
    lines = [f"### {name} {{ #{kind}-{name.lower()} }}", ""]
    lines += _description(field.description, field.deprecation_reason)
    lines += [f"Returns {_ref(field.type)}.", ""]
    if field.args:
        lines += _values_table("argument", field.args)
    return lines


def _named_type(named_type: GraphQLNamedType) -> list[str]:
    lines = [f"### {named_type.name} {{ #{_anchor(named_type.name)} }}", ""]
    lines += _description(named_type.description)
    if isinstance(named_type, GraphQLObjectType | GraphQLInterfaceType):
        if named_type.interfaces:
            lines += [f"Implements {_refs(named_type.interfaces)}.", ""]
        lines += _fields_table(named_type.fields)
    elif isinstance(named_type, GraphQLUnionType):
        lines += [f"One of {_refs(named_type.types)}.", ""]
    elif isinstance(named_type, GraphQLInputObjectType):
        lines += _values_table("field", named_type.fields)
    elif isinstance(named_type, GraphQLEnumType):
        lines += ["| value | description |", "|---|---|"]
        for name, value in named_type.values.items():
            lines.append(f"| `{name}` | {_cell(value.description, value.deprecation_reason)} |")
        lines.append("")
    elif isinstance(named_type, GraphQLScalarType):
        url = named_type.specified_by_url
        if url and url not in (named_type.description or ""):
            lines += [f"Specified by <{url}>.", ""]
    return lines


def _fields_table(fields: dict[str, GraphQLField]) -> list[str]:
    """Output fields; an arguments column when any of them takes arguments."""
    with_args = any(field.args for field in fields.values())
    columns = (
        ["field", "arguments", "type", "description"]
        if with_args
        else ["field", "type", "description"]
    )
    lines = [f"| {' | '.join(columns)} |", "|---" * len(columns) + "|"]
    for name, field in fields.items():
        cells = [f"`{name}`"]
        if with_args:
            cells.append("<br>".join(_argument(*arg) for arg in field.args.items()))
        cells += [_ref(field.type), _cell(field.description, field.deprecation_reason)]
        lines.append(f"| {' | '.join(cells)} |")
    return [*lines, ""]


def _argument(name: str, argument: GraphQLArgument) -> str:
    default = _default(argument)
    return f"`{name}`: {_ref(argument.type)}" + (f" = {default}" if default else "")


def _values_table(
    what: str, values: dict[str, GraphQLArgument] | dict[str, GraphQLInputField]
) -> list[str]:
    """Arguments of a field, or fields of an input type."""
    lines = [f"| {what} | type | default | description |", "|---|---|---|---|"]
    for name, value in values.items():
        description = _cell(value.description, value.deprecation_reason)
        lines.append(f"| `{name}` | {_ref(value.type)} | {_default(value)} | {description} |")
    return [*lines, ""]


def _ref(graphql_type: GraphQLType) -> str:
    """A type as written in the schema (`[Profile!]!`), its name linked to its heading."""
    if isinstance(graphql_type, GraphQLNonNull):
        return f"{_ref(graphql_type.of_type)}!"
    if isinstance(graphql_type, GraphQLList):
        return f"\\[{_ref(graphql_type.of_type)}\\]"
    assert isinstance(graphql_type, GraphQLNamedType)
    return f"[`{graphql_type.name}`](#{_anchor(graphql_type.name)})"


def _refs(named_types: Iterable[GraphQLNamedType]) -> str:
    return ", ".join(_ref(named_type) for named_type in sorted(named_types, key=lambda t: t.name))


def _anchor(name: str) -> str:
    return name.lower()


def _default(value: GraphQLArgument | GraphQLInputField) -> str:
    """The default as written in the schema, or nothing."""
    node = value.ast_node.default_value if value.ast_node else None
    return f"`{print_ast(node)}`" if node else ""


def _markdown(text: str, in_table: bool = False) -> str:
    """A description (Markdown), escaped outside code spans: `<` (`consent_<purpose>` is text)
    and, in a table, `|`. Inside code spans both are safe as they are."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[i] = parts[i].replace("<", "&lt;")
        if in_table:
            parts[i] = parts[i].replace("|", "\\|")
    return "".join(parts)


def _text(description: str | None, deprecation: str | None, in_table: bool = False) -> str:
    text = _markdown(description or "", in_table)
    if deprecation:
        text += f"\n\n**Deprecated**: {_markdown(deprecation, in_table)}"
    return text.strip()


def _description(description: str | None, deprecation: str | None = None) -> list[str]:
    """A description as paragraphs."""
    text = _text(description, deprecation)
    return [text, ""] if text else []


def _cell(description: str | None, deprecation: str | None = None) -> str:
    """A description on one line, for a table cell."""
    return " ".join(_text(description, deprecation, in_table=True).split())
