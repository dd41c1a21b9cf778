"""Generates the published contract artefacts from the registry, or checks them for drift.

    python -m shopstream_contracts.generate            # write the artefacts
    python -m shopstream_contracts.generate --check    # exit 1 and list every drifted file (CI)

Artefacts (paths relative to the repository root):

- ``contracts/schemas/<type>/v<N>.json``: JSON Schema (draft 2020-12) of every event type and
  version. The schemas describe what a tolerant reader accepts, so they allow unknown
  properties: an optional field added later never breaks a consumer that validates with them.
- ``contracts/asyncapi.yaml``: AsyncAPI 3.0 document of every topic, message, key and header.
- the topics and events tables of ``docs/subscribing.md``, between its marker comments.

Output is deterministic (sorted keys, registry order, trailing newline), so the check is a
plain text comparison. A published schema must never change incompatibly: that is what a new
version and an upcaster are for, and the check says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shopstream_contracts import _yaml
from shopstream_contracts.base import Event, EventContract
from shopstream_contracts.catalogue import REGISTRY
from shopstream_contracts.registry import Registry
from shopstream_contracts.topics import DEADLETTER_HEADERS, DEADLETTER_TOPIC

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMAS_DIR = Path("contracts/schemas")
ASYNCAPI_PATH = Path("contracts/asyncapi.yaml")
SUBSCRIBING_PATH = Path("docs/subscribing.md")
TABLES_BEGIN = "<!-- generated:topics:begin (python -m shopstream_contracts.generate) -->"
TABLES_END = "<!-- generated:topics:end -->"

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
CONTENT_TYPE = "application/json"


def schema_path(contract: EventContract) -> Path:
    return SCHEMAS_DIR / contract.type / f"v{contract.version}.json"


def event_schema(model: type[Event]) -> dict[str, Any]:
    contract = model.contract
    schema = _without_closed_objects(model.model_json_schema(mode="validation"))
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:shopstream:event:{contract.type}:v{contract.version}",
        "x-shopstream-type": contract.type,
        "x-shopstream-dataversion": contract.version,
        "x-shopstream-topic": contract.topic.name,
        "x-shopstream-key": contract.topic.key,
        **schema,
    }


def _without_closed_objects(node: Any) -> Any:
    # The models forbid unknown fields for producers; the published schema is the reader's view.
    if isinstance(node, dict):
        return {
            key: _without_closed_objects(value)
            for key, value in node.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(node, list):
        return [_without_closed_objects(item) for item in node]
    return node


def _channel_id(topic_name: str) -> str:
    return topic_name.replace(".", "_")


def _message_id(contract: EventContract) -> str:
    return f"{contract.type}.v{contract.version}"


def _channel_message_id(contract: EventContract) -> str:
    return _message_id(contract).replace(".", "_")


def _headers_schema(contract: EventContract) -> dict[str, Any]:
    topic = contract.topic
    return {
        "type": "object",
        "required": [
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_specversion",
            "ce_time",
            "ce_subject",
            "content-type",
            "dataversion",
        ],
        "properties": {
            "ce_id": {"type": "string", "minLength": 1, "description": "Event id, unique: the dedup key."},
            "ce_source": {"type": "string", "const": topic.source, "description": "Producing service."},
            "ce_type": {"type": "string", "const": contract.type, "description": "Event type."},
            "ce_specversion": {"type": "string", "const": "1.0", "description": "CloudEvents version."},
            "ce_time": {
                "type": "string",
                "format": "date-time",
                "description": "When the event happened (RFC 3339, UTC).",
            },
            "ce_subject": {
                "type": "string",
                "minLength": 1,
                "description": f"Aggregate id: the value of `{topic.key}`, equal to the message key.",
            },
            "content-type": {
                "type": "string",
                "const": CONTENT_TYPE,
                "description": "Encoding of the value.",
            },
            "correlationid": {
                "type": "string",
                "description": "Id shared by every event of one business flow (e.g. a sale), if any.",
            },
            "causationid": {
                "type": "string",
                "description": "Id of the event or command that caused this one.",
            },
            "dataversion": {
                "type": "string",
                "const": str(contract.version),
                "description": "Version of the data schema, in decimal.",
            },
        },
    }


def asyncapi(registry: Registry) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in registry.topics():
        channel_id = _channel_id(topic.name)
        contracts = [c for c in registry.contracts() if c.topic == topic]
        channels[channel_id] = {
            "address": topic.name,
            "title": topic.name,
            "description": f"{topic.description} Key: `{topic.key}`.",
            "messages": {
                _channel_message_id(c): {"$ref": f"#/components/messages/{_message_id(c)}"} for c in contracts
            },
            "bindings": {"kafka": {"topic": topic.name, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "title": f"{topic.service} publishes to {topic.name}",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{_channel_message_id(c)}"} for c in contracts
            ],
        }
        for contract in contracts:
            messages[_message_id(contract)] = _message(registry.model(contract.type, contract.version))
    channels[_channel_id(DEADLETTER_TOPIC)] = {
        "address": DEADLETTER_TOPIC,
        "title": DEADLETTER_TOPIC,
        "description": "Messages a Shopstream consumer could not decode or handle: original key, "
        "value and headers, plus the dl_* headers.",
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        "bindings": {"kafka": {"topic": DEADLETTER_TOPIC, "bindingVersion": KAFKA_BINDING_VERSION}},
    }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "Dead-lettered message",
        "summary": "A message some consumer gave up on, kept byte for byte with the reason.",
        "headers": {
            "type": "object",
            "required": sorted(DEADLETTER_HEADERS),
            "properties": {
                name: {"type": "string", "description": d} for name, d in DEADLETTER_HEADERS.items()
            },
        },
        "payload": {"description": "The original value, unchanged (possibly not JSON)."},
    }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:shopstream:events",
        "info": {
            "title": "Shopstream public events",
            "version": "1.0.0",
            "description": "Every event Shopstream publishes on Kafka, as CloudEvents 1.0 in binary "
            "content mode: ce_* headers, the JSON data as the value, the aggregate id as the key. "
            "Each event type is versioned on its own (the dataversion header); see docs/subscribing.md.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _message(model: type[Event]) -> dict[str, Any]:
    contract = model.contract
    topic = contract.topic
    return {
        "name": contract.type,
        "title": f"{contract.type.rpartition('.')[2]} v{contract.version}",
        "summary": _summary(model),
        "description": " ".join((model.__doc__ or "").split()),
        "contentType": CONTENT_TYPE,
        "headers": _headers_schema(contract),
        "payload": {"$ref": str(schema_path(contract).relative_to(ASYNCAPI_PATH.parent).as_posix())},
        "correlationId": {"location": "$message.header#/correlationid"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"The aggregate id: the value of `{topic.key}`."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def subscribing_tables(registry: Registry) -> str:
    lines = [
        "| Topic | Key (data field) | Producer | What it carries |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{t.name}` | `{t.key}` | {t.service} | {t.description} |" for t in registry.topics()]
    lines += ["", "| `ce_type` | `dataversion` | Topic | What happened | Schema |", "|---|---|---|---|---|"]
    for contract in registry.contracts():
        path = schema_path(contract).as_posix()
        summary = _summary(registry.model(contract.type, contract.version))
        lines.append(
            f"| `{contract.type}` | {contract.version} | `{contract.topic.name}` | {summary} "
            f"| [v{contract.version}.json](../{path}) |"
        )
    return "\n".join(lines)


def _summary(model: type[Event]) -> str:
    """The first sentence of the model's docstring, on one line."""
    text = " ".join((model.__doc__ or "").split())
    sentence, dot, _ = text.partition(". ")
    return sentence + ("." if dot else "")


def _splice(document: str, tables: str) -> str:
    head, begin, rest = document.partition(TABLES_BEGIN)
    _, end, tail = rest.partition(TABLES_END)
    if not (begin and end):
        raise ValueError(f"{SUBSCRIBING_PATH} must contain {TABLES_BEGIN!r} and then {TABLES_END!r}")
    return f"{head}{TABLES_BEGIN}\n{tables}\n{TABLES_END}{tail}"


def _dump_json(data: Any) -> str:
    return json.dumps(_sorted(data), indent=2, ensure_ascii=False) + "\n"


def _sorted(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _sorted(node[key]) for key in sorted(node)}
    if isinstance(node, list):
        return [_sorted(item) for item in node]
    return node


def render(registry: Registry, root: Path) -> dict[Path, str]:
    """Every artefact's path (relative to root) and exact content."""
    files = {
        schema_path(c): _dump_json(event_schema(registry.model(c.type, c.version)))
        for c in registry.contracts()
    }
    files[ASYNCAPI_PATH] = _yaml.dump(_sorted(asyncapi(registry)))
    files[SUBSCRIBING_PATH] = _splice(
        (root / SUBSCRIBING_PATH).read_text(encoding="utf-8"), subscribing_tables(registry)
    )
    return files


def _stale_schemas(root: Path, files: dict[Path, str]) -> list[Path]:
    on_disk = (path.relative_to(root) for path in (root / SCHEMAS_DIR).glob("*/v*.json"))
    return sorted(path for path in on_disk if path not in files)


def drift(registry: Registry, root: Path) -> list[str]:
    """One line per artefact that differs from what the registry generates."""
    files = render(registry, root)
    problems: list[str] = []
    for path, content in sorted(files.items()):
        target = root / path
        if not target.exists():
            problems.append(f"{path}: missing; run the generator")
            continue
        current = target.read_text(encoding="utf-8")
        if current == content:
            continue
        if path.parent.parent != SCHEMAS_DIR:
            problems.append(f"{path}: out of date; run the generator")
        elif _compatible(_json_or_none(current), json.loads(content)):
            problems.append(f"{path}: changed compatibly (new optional fields or docs); run the generator")
        else:
            version = int(path.stem[1:])
            problems.append(
                f"{path}: the published schema of ({path.parent.name}, v{version}) changed incompatibly; "
                f"never change a published version: add version {version + 1} and an upcaster "
                f"v{version}→v{version + 1} instead"
            )
    problems += [
        f"{path}: schema of a version that is no longer registered; published versions are never removed"
        for path in _stale_schemas(root, files)
    ]
    return problems


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


_DOC_KEYWORDS = {"description", "title", "examples"}
_ADDABLE_KEYWORDS = _DOC_KEYWORDS | {"properties", "$defs", "default"}
_NAMED_SUBSCHEMAS = {"properties", "$defs"}


def _compatible(old: Any, new: Any) -> bool:
    """Whether ``new`` accepts and means everything ``old`` did: only documentation changed,
    optional properties or definitions were added. Conservative: anything else is breaking."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            if key in _DOC_KEYWORDS:
                continue
            if key not in old:
                if key not in _ADDABLE_KEYWORDS:
                    return False
            elif key not in new:
                return False
            elif key in _NAMED_SUBSCHEMAS:
                if any(
                    name not in new[key] or not _compatible(sub, new[key][name])
                    for name, sub in old[key].items()
                ):
                    return False
            elif not _compatible(old[key], new[key]):
                return False
        return True
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_compatible(o, n) for o, n in zip(old, new, strict=True))
    return bool(old == new)


def write(registry: Registry, root: Path) -> list[Path]:
    """Write every artefact that differs, delete stale schemas; return what changed."""
    files = render(registry, root)
    changed: list[Path] = []
    for path, content in sorted(files.items()):
        target = root / path
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            changed.append(path)
    for path in _stale_schemas(root, files):
        (root / path).unlink()
        changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shopstream_contracts.generate",
        description="Generate the contract artefacts (JSON Schemas, AsyncAPI, topic tables), or check them.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing every drifted file"
    )
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(REGISTRY, args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"{len(problems)} contract artefact(s) drifted from the models", file=sys.stderr)
            return 1
        print("contract artefacts are up to date")
        return 0
    for path in write(REGISTRY, args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
