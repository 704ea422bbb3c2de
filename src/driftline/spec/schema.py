"""The JSON Schema of a monitor file, for editors (``driftline schema``)."""

from __future__ import annotations

from typing import Any

from driftline.spec.models import CHECK_TYPES, Monitor


def monitor_json_schema() -> dict[str, Any]:
    """pydantic's schema, with checks written as ``- drift: {...}`` as users write them."""
    schema = Monitor.model_json_schema(mode="validation")
    definitions = schema.get("$defs", {})
    variants = []
    for kind in CHECK_TYPES:
        name = f"{kind.capitalize()}Check"
        body = definitions.get(name)
        if body is None:
            continue
        body.get("properties", {}).pop("type", None)
        if "required" in body:
            body["required"] = [r for r in body["required"] if r != "type"]
        variants.append({"type": "object", "properties": {kind: {"$ref": f"#/$defs/{name}"}}, "required": [kind], "additionalProperties": False})
    schema["properties"]["checks"] = {"type": "array", "minItems": 1, "items": {"oneOf": variants}}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "driftline monitor"
    return schema
