"""The monitor YAML format: loading with positions, the pydantic models, the JSON Schema and
the located error messages."""
