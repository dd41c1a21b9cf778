"""The results file: every figure with its baseline, ratio and targets, and the machine facts."""

from __future__ import annotations

import json
import os
import platform
import socket
import sqlite3
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .figures import Figure


def machine_facts() -> dict[str, Any]:
    from shopstream_infra.kafka.fetch import kafka_version
    from shopstream_infra.postgres import find_bindir

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        postgres = subprocess.run(
            [str(find_bindir() / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except Exception as exc:
        postgres = f"unavailable ({exc})"
    try:
        import confluent_kafka

        confluent = f"{confluent_kafka.version()[0]} (librdkafka {confluent_kafka.libversion()[0]})"
    except Exception:
        confluent = "unavailable"
    try:
        import aiokafka

        aiokafka_version = aiokafka.__version__
    except Exception:
        aiokafka_version = "unavailable"
    return {
        "host": socket.gethostname(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "confluent_kafka": confluent,
        "aiokafka": aiokafka_version,
    }


def write_results(
    out_dir: Path,
    profile: str,
    figures: Sequence[Figure],
    errors: dict[str, str],
    started: datetime,
    only: Sequence[str] = (),
) -> tuple[Path, Path]:
    """``<date>-<host>.json`` and ``.md`` side by side (``-<names>`` added for a partial run, so
    it never replaces the day's complete results); returns both paths."""
    facts = machine_facts()
    stem = "-".join([started.strftime("%Y-%m-%d"), str(facts["host"]), *sorted(only)])
    document = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "profile": profile,
        "machine": facts,
        "figures": [figure.to_json() for figure in figures],
        "errors": errors,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    _atomic_write(json_path, json.dumps(document, indent=2, default=str) + "\n")
    _atomic_write(md_path, markdown(document))
    return json_path, md_path


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _verdict(met: bool | None) -> str:
    return "?" if met is None else "✅" if met else "❌"


def markdown(document: dict[str, Any]) -> str:
    facts = document["machine"]
    lines = [
        f"# Benchmark results — {document['started'][:10]} on {facts['host']} ({document['profile']})",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        "Each value is the median over the runs (min–max in brackets); the baseline is the raw "
        "equivalent measured in the same run; ratio = value / baseline.",
        "",
        "| benchmark | figure | value | baseline | ratio | targets | checks |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in document["figures"]:
        value = figure["value"]
        base = figure["baseline"]
        spread = f"{_number(value['min'])}–{_number(value['max'])}"
        shown = f"{_number(value['median'])} {figure['unit']} ({spread})"
        base_shown = "–" if base is None else f"{base['name']}: {_number(base['median'])}"
        targets = "; ".join(f"{t['text']} {_verdict(t['met'])}" for t in figure["targets"])
        checks = "❌ " + ", ".join(figure["failed_checks"]) if figure["failed_checks"] else "ok"
        lines.append(
            f"| {figure['benchmark']} | {figure['name']} | {shown} | {base_shown} | "
            f"{_number(figure['ratio'])} | {targets or '–'} | {checks} |"
        )
    notes = [f for f in document["figures"] if f["notes"]]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- **{f['benchmark']} / {f['name']}**: {f['notes']}" for f in notes]
    if document["errors"]:
        lines += ["", "## Benchmarks that failed to run", ""]
        lines += [f"- **{name}**: {error}" for name, error in document["errors"].items()]
    return "\n".join(lines) + "\n"
