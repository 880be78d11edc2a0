"""The deploy recipes as their tools read them: Kubernetes manifests against the Kubernetes
schemas (kubernetes-validate, offline, strict), the Gateway API HTTPRoute against the schema of
its released CRD (stored in schemas/, strict), the Dockerfile through hadolint, the compose
file against the compose-spec schema, and every BFF_* name they set known to the service."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.config.settings import known_variables
from tests.deploy.recipes import K8S, ROOT, documents

BIN = Path(sys.executable).parent
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# Kinds without a schema in kubernetes-validate, checked by the tests below instead.
NO_SCHEMA = {"Kustomization"}
# Custom resources: (apiVersion, kind) -> the openAPIV3Schema of their CRD, stored as JSON
# (each with a $comment naming its source release; schemas/refresh_httproute.py rewrites it).
CRD_SCHEMAS = {("gateway.networking.k8s.io/v1", "HTTPRoute"): SCHEMAS / "httproute-v1.json"}


def manifests() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def strict_crd_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A copy of a CRD's structural schema that refuses what the API server would drop.

    The API server prunes fields its schema does not name, silently (or refuses them under
    `kubectl apply --validate=strict`): every object schema with `properties` and neither
    `additionalProperties` nor `x-kubernetes-preserve-unknown-fields` gets
    `additionalProperties: false`. Kubernetes' OpenAPI extensions, mapped where jsonschema can
    check them: `x-kubernetes-int-or-string` (integer or string), `nullable`. Not checked, as
    jsonschema cannot evaluate them: the CEL rules of `x-kubernetes-validations` (the HTTPRoute
    test below checks what ours must satisfy), the key uniqueness of `x-kubernetes-list-type`
    map/set lists, `format` (int32, int64, date-time), and defaulting. Patterns are Go RE2
    expressions, run with Python's re: the same for these, but that `$` also takes a final
    newline.
    """
    node = dict(node)
    if node.get("x-kubernetes-int-or-string") and "type" not in node and "anyOf" not in node:
        node["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if "properties" in node:
        node["properties"] = {k: strict_crd_schema(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            node["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = strict_crd_schema(node[key])
    return node


@functools.cache
def crd_validator(api_version: str, kind: str, strict: bool = True) -> jsonschema.Validator:
    schema = json.loads(CRD_SCHEMAS[api_version, kind].read_text())
    if strict:
        schema = strict_crd_schema(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """What the API server would refuse (or drop) in a custom resource, strictly, offline."""
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in crd_validator(doc["apiVersion"], doc["kind"]).iter_errors(doc)
    ]
    # A CRD's schema says only `metadata: {type: object}`; the API server reads it as the
    # ObjectMeta of every object, which kubernetes-validate knows (strict): checked as a
    # ConfigMap's.
    meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}
    try:
        kubernetes_validate.validate(meta, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as e:
        errors.append(f"{'.'.join(map(str, e.absolute_path))}: {e.message}")
    return errors


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    for doc in documents(path):
        if doc["kind"] in NO_SCHEMA:
            continue
        if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
            assert crd_errors(doc) == []
            continue
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_every_httproute_is_validated_against_the_crd_schema() -> None:
    """The route is not skipped: its apiVersion is the one the stored schema is for."""
    routes = [d for p in manifests() for d in documents(p) if d["kind"] == "HTTPRoute"]
    assert routes
    assert {(d["apiVersion"], d["kind"]) for d in routes} <= set(CRD_SCHEMAS)
    comment = json.loads(SCHEMAS.joinpath("httproute-v1.json").read_text())["$comment"]
    assert "kubernetes-sigs/gateway-api tag v" in comment
    assert "channel standard" in comment


def test_strict_validation_refuses_a_misspelt_field() -> None:
    """The check above can fail: a field Kubernetes does not know is refused."""
    (deployment,) = documents(K8S / "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def route_with(change: str) -> dict[str, Any]:
    (route,) = documents(K8S / "gateway" / "httproute.yaml")
    route = copy.deepcopy(route)
    rule = route["spec"]["rules"][1]
    if change == "backendRef":  # misspelt backendRefs: pruned, the rule would route nowhere
        rule["backendRef"] = rule.pop("backendRefs")
    elif change == "timeout":  # misspelt timeouts: pruned, the long-polls cut by the default
        rule["timeout"] = rule.pop("timeouts")
    elif change == "label":  # misspelt metadata.labels
        route["metadata"]["label"] = route["metadata"].pop("labels")
    elif change == "port-name":  # a Service port name where the number is required
        rule["backendRefs"][0]["port"] = "http"
    elif change == "timeout-unitless":  # `request: 60` in YAML: an integer, not a duration
        rule["timeouts"]["request"] = 60
    elif change == "hostnames-string":
        route["spec"]["hostnames"] = "chat.example.com"
    else:
        raise AssertionError(change)
    return route


@pytest.mark.parametrize("change", ["backendRef", "timeout", "label"])
def test_crd_validation_refuses_a_misspelt_field(change: str) -> None:
    """The check can fail: a field the CRD does not name is refused, which the API server
    drops silently unless the client asks for strict field validation (and which the schema as
    published lets through)."""
    route = route_with(change)
    errors = crd_errors(route)
    assert errors and all(change in e for e in errors), errors
    assert change == "label" or not list(
        crd_validator(route["apiVersion"], route["kind"], strict=False).iter_errors(route)
    )


@pytest.mark.parametrize("change", ["port-name", "timeout-unitless", "hostnames-string"])
def test_crd_validation_refuses_a_wrong_type(change: str) -> None:
    errors = crd_errors(route_with(change))
    assert len(errors) == 1 and "is not of type" in errors[0], errors


def test_kustomization_lists_every_manifest_it_applies() -> None:
    (kustomization,) = documents(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    for name in listed:
        assert (K8S / name).is_file(), name
    # Applied separately (alternatives), on purpose: the Gateway route, the streams HPA, the
    # example Secret (created out of band).
    top_level = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert top_level - listed == {"secret.example.yaml", "hpa-streams.example.yaml"}


def test_httproute_sends_public_paths_to_the_service() -> None:
    """Beyond its schema: the route against the Service it must reach, the behaviour it must
    have, and the CEL rules (x-kubernetes-validations) of the CRD it relies on."""
    (route,) = documents(K8S / "gateway" / "httproute.yaml")
    (service,) = documents(K8S / "service.yaml")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    ports = {p["port"] for p in service["spec"]["ports"]}
    paths = {}
    for rule in route["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            assert ref["name"] == service["metadata"]["name"]
            assert ref["port"] in ports
        for match in rule["matches"]:
            paths[match["path"]["value"]] = rule.get("timeouts", {}).get("request")
    assert paths["/api/v2/chats/[^/]+/events/?"] == "0s"  # streams outlive any request timeout
    assert paths["/api/"] == "60s"  # above the 30 s long-poll
    assert not any(p.startswith("/metrics") for p in paths)
    # Every page the service serves to people, and what those pages load.
    assert {"/", "/static/", "/docs", "/redoc", "/docs-assets/", "/openapi.json"} <= set(paths)
    # The CRD's CEL rules on what this route uses, which jsonschema cannot evaluate.
    assert sum(len(rule["matches"]) for rule in route["spec"]["rules"]) <= 128
    for rule in route["spec"]["rules"]:
        assert "filters" not in rule  # their rules (redirects, rewrites) are not checked here
        assert "backendRequest" not in rule.get("timeouts", {})  # would have to be <= request
        for match in rule["matches"]:
            path = match["path"]
            if path["type"] in ("Exact", "PathPrefix"):
                value = path["value"]
                assert re.fullmatch(r"/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*", value)
                assert not any(s in value for s in ("//", "/./", "/../", "%2f", "%2F", "#"))
                assert not value.endswith(("/..", "/."))
            else:
                assert path["type"] == "RegularExpression"


def test_settings_in_recipes_are_known_to_the_service() -> None:
    """A typo in a recipe would be refused at startup: catch it here first."""
    known = known_variables()
    (configmap,) = documents(K8S / "configmap.yaml")
    (secret,) = documents(K8S / "secret.example.yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    names = set(configmap["data"]) | set(secret["stringData"])
    names |= set(compose["x-bff"]["environment"])
    assert names - known == set()
    deployment = (K8S / "deployment.yaml").read_text()
    names = set(re.findall(r"\bBFF_[A-Z_]+", deployment))
    assert names - known == set()


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_uses_a_pinned_base_the_lock_and_no_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:[\w.-]+@sha256:[0-9a-f]{64}$", text, re.M)
    assert (
        "pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock"
        in text
    )
    assert "pip install --no-cache-dir --no-deps /tmp/dist/chat_bff-*.whl" in text
    assert " -e " not in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))


def test_compose_file_matches_the_compose_schema() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
