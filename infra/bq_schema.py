"""The BigQuery schema of the raw-records table, derived from the row model.

    python -m infra.bq_schema          # writes infra/schemas/usage_records.json
    python -m infra.bq_schema --check  # exit 1 if the committed file is not what it writes

Terraform reads the written file (infra/bigquery.tf); tests/infra/test_bq_schema.py fails
while it differs from what this module derives now, so the table cannot drift from
``shared.ingest.rows.RecordRow`` (the ``UsageRecord`` plus workspace, cost and acceptance).

Each field's column type comes from its annotation (``X | None`` is a NULLABLE column, else
REQUIRED: every row carries every key); types are spelt as the BigQuery API returns them
(INTEGER, FLOAT, BOOLEAN), so Terraform sees no difference after an apply. A field whose
type has no column type here, or that has no description, stops the script.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from shared.ingest.rows import COLUMN_DESCRIPTIONS, RecordRow

SCHEMA_DIR: Final = Path(__file__).resolve().parent / "schemas"
# Table id (shared/topology.yaml's bigquery_exports) -> the model of its rows.
TABLES: Final[Mapping[str, type[BaseModel]]] = {"usage_records": RecordRow}

# Exact types only: bool is not an int here, and a datetime is not a date.
_COLUMN_TYPES: Final[Mapping[type, str]] = {
    str: "STRING",
    int: "INTEGER",
    float: "FLOAT",
    bool: "BOOLEAN",
    datetime: "TIMESTAMP",
    # NUMERIC: 38 digits, 9 after the point (the row writes the cost to 1e-9 USD).
    Decimal: "NUMERIC",
}


class SchemaError(TypeError):
    pass


def column_type(annotation: Any, where: str) -> tuple[str, bool]:
    """(BigQuery type, nullable) of a field annotation."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return column_type(get_args(annotation)[0], where)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            raise SchemaError(f"{where}: a union of {members} has no single column type")
        return column_type(members[0], where)[0], True
    if origin is Literal:
        kinds = {type(v) for v in get_args(annotation)}
        if len(kinds) != 1:
            raise SchemaError(f"{where}: a Literal of several types {sorted(map(str, kinds))}")
        return column_type(kinds.pop(), where)
    if isinstance(annotation, type) and annotation in _COLUMN_TYPES:
        return _COLUMN_TYPES[annotation], False
    raise SchemaError(f"{where}: no BigQuery column type for {annotation!r}")


def table_schema(model: type[BaseModel], descriptions: Mapping[str, str]) -> list[dict[str, str]]:
    """The table's columns, in the model's field order."""
    fields = model.model_fields
    if extra := sorted(set(descriptions) - set(fields)):
        raise SchemaError(f"descriptions of no field of {model.__name__}: {extra}")
    columns = []
    for name, info in fields.items():
        where = f"{model.__name__}.{name}"
        if name not in descriptions:
            raise SchemaError(f"{where} has no column description (shared/ingest/rows.py)")
        type_, nullable = column_type(info.annotation, where)
        columns.append(
            {
                "name": name,
                "type": type_,
                "mode": "NULLABLE" if nullable else "REQUIRED",
                "description": descriptions[name],
            }
        )
    return columns


def schema_text(table: str) -> str:
    """The schema file's content for ``table``."""
    return json.dumps(table_schema(TABLES[table], COLUMN_DESCRIPTIONS), indent=2) + "\n"


def schema_path(table: str) -> Path:
    return SCHEMA_DIR / f"{table}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for table in TABLES:
        path, text = schema_path(table), schema_text(table)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    for path in stale:
        print(f"{path} is stale: run python -m infra.bq_schema", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
