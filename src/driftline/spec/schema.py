"""The JSON Schemas of a monitor file, of ``driftline_project.yml`` and of a macros file, for editors.

``driftline schema [--project | --macros]`` prints them; the same documents are committed under
``schemas/`` and written by ``driftline init`` into a new project, where the first line of each
YAML file points an editor at them (``# yaml-language-server: $schema=...``). They describe what
an editor sees, the text: dates and durations are strings there, whatever YAML would make of them.
"""

from __future__ import annotations

import json
from typing import Any

from driftline.spec.models import CHECK_TYPES, Monitor

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# The committed files, relative to the repository root and to a project made by `driftline init`.
SCHEMA_FILES = {
    "monitor": "schemas/monitor.schema.json",
    "project": "schemas/project.schema.json",
    "macros": "schemas/macros.schema.json",
}


def monitor_json_schema() -> dict[str, Any]:
    """pydantic's schema, with checks written as ``- drift: {...}`` as users write them."""
    schema = Monitor.model_json_schema(mode="validation")
    definitions = schema.get("$defs", {})
    # Each check model's `type` is a constant: the key the check is written under.
    by_kind = {body["properties"]["type"].get("const"): name for name, body in definitions.items() if "type" in body.get("properties", {})}
    variants = []
    for kind in CHECK_TYPES:
        name = by_kind[kind]
        body = definitions[name]
        body.get("properties", {}).pop("type", None)
        if "required" in body:
            body["required"] = [r for r in body["required"] if r != "type"]
        # `- drift:` with nothing under it is a drift check with every default.
        value: dict[str, Any] = {"$ref": f"#/$defs/{name}"}
        if not body.get("required"):
            value = {"anyOf": [value, {"type": "null"}]}
        value["description"] = body.get("description", f"a {kind} check")
        variants.append({"type": "object", "properties": {kind: value}, "required": [kind], "additionalProperties": False})
    # pydantic cannot say "exactly one of": Source's validator does, and this says it to editors.
    definitions["Source"]["oneOf"] = [{"required": [key]} for key in ("table", "sql", "dbt")]
    checks = schema["properties"]["checks"]
    checks.pop("items", None)
    checks.update({"type": "array", "minItems": 1, "items": {"oneOf": variants}})
    return _document(schema, "driftline monitor", "One monitor: a model's predictions, the windows they are cut into, and the checks run on each (monitors/*.yml).")


def project_json_schema() -> dict[str, Any]:
    from driftline.project import ProjectFile

    schema = ProjectFile.model_json_schema(mode="validation", by_alias=True)
    return _document(schema, "driftline project", "The project's settings (driftline_project.yml).")


def macros_json_schema() -> dict[str, Any]:
    """driftline.macros reads macro files itself, node by node to keep every line, with no model
    to derive a schema from: this states its rules (MACRO_KEYS, the name patterns) for editors."""
    macro = {
        "type": "object",
        "description": "One macro: `{arg}` placeholders in `sql` are replaced by the call's arguments.",
        "properties": {
            "description": {"type": "string", "description": "What the macro computes."},
            "args": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "uniqueItems": True,
                "description": "The argument names, each used as {name} in `sql`.",
            },
            "sql": {"type": "string", "description": "One SQL expression (an aggregate, for a metric check); other macros may be called."},
        },
        "required": ["sql"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {
            "macros": {
                "type": ["object", "null"],
                "description": "Macro name (lowercase snake case, not a SQL function or keyword) to its definition.",
                "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*$"},
                "additionalProperties": macro,
            }
        },
        "additionalProperties": False,
    }
    return _document(schema, "driftline macros", "Reusable, parameterised SQL expressions (macros/*.yml).")


def _document(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"$schema": DRAFT, "title": title, "description": description, **{k: v for k, v in schema.items() if k not in ("title", "description")}}


def schema_text(kind: str) -> str:
    """The document as committed and printed: the same bytes every time, so staleness is a diff."""
    schema = {"monitor": monitor_json_schema, "project": project_json_schema, "macros": macros_json_schema}[kind]()
    return json.dumps(schema, indent=2) + "\n"


def modeline(kind: str, from_directory: str = ".") -> str:
    """The first line of a YAML file that points yaml-language-server (VS Code and others) at the
    schema file, by a path relative to the YAML file itself."""
    prefix = "" if from_directory == "." else "../" * len(from_directory.strip("/").split("/"))
    return f"# yaml-language-server: $schema={prefix}{SCHEMA_FILES[kind]}"
