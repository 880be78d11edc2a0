"""The deploy recipes as their tools read them: Kubernetes manifests against the Kubernetes
schemas (kubernetes-validate, offline, strict), the Dockerfile through hadolint, the compose
file against the compose-spec schema, and every BFF_* name they set known to the service."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.config import known_variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent
# Kinds without a schema in kubernetes-validate, checked by the tests below instead.
NO_SCHEMA = {"Kustomization", "HTTPRoute"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifests() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    for doc in documents(path):
        if doc["kind"] in NO_SCHEMA:
            continue
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_strict_validation_refuses_a_misspelt_field() -> None:
    """The check above can fail: a field Kubernetes does not know is refused."""
    (deployment,) = documents(K8S / "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


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
    """No schema for Gateway API kinds ships offline; the route is checked against the Service
    it must reach and the behaviour it must have."""
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
