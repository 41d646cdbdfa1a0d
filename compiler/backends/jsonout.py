"""The checked IR as JSON (``netc ir``) and its JSON Schema (``netc schema``).

Both come from the IR's Pydantic models: the document ``netc ir`` prints
validates against the schema ``netc schema`` prints, and reads back into an
equal ``ir.Network`` (``ir.Network.model_validate_json``).
"""

from __future__ import annotations

import json

from compiler import ir


def network_json(net: ir.Network) -> str:
    """``net`` as JSON, two-space indented, fields in the models' order."""
    return net.model_dump_json(indent=2) + "\n"


def schema_json() -> str:
    """The JSON Schema of ``ir.Network``, keys sorted (tests/snapshots/ir_schema.json)."""
    return json.dumps(ir.Network.model_json_schema(), indent=2, sort_keys=True) + "\n"
