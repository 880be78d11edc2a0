"""Where the Kubernetes recipes send probes, Prometheus and the public (issue 18, finding 8):
the internal port the ConfigMap sets is the one the probes and the scrape annotations use,
the Service exposes only the public port, and the NetworkPolicy lets the ingress controller
reach only the public port and the monitoring namespace only the internal one."""

from __future__ import annotations

from typing import Any

from tests.deploy.recipes import K8S, documents


def container() -> tuple[dict[str, Any], dict[str, Any]]:
    (deployment,) = documents(K8S / "deployment.yaml")
    template = deployment["spec"]["template"]
    (main,) = template["spec"]["containers"]
    return template, main


def test_probes_and_metrics_use_the_internal_port_the_configmap_sets() -> None:
    (configmap,) = documents(K8S / "configmap.yaml")
    internal = int(configmap["data"]["BFF_INTERNAL_PORT"])
    template, main = container()
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports["internal"] == internal
    assert ports["http"] != internal
    for probe in ("readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"]["port"] == "internal", probe
    annotations = template["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == internal
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_service_and_the_network_policy_keep_the_internal_port_private() -> None:
    (service,) = documents(K8S / "service.yaml")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    (policy,) = documents(K8S / "networkpolicy.yaml")
    reach = {}
    for rule in policy["spec"]["ingress"]:
        (source,) = rule["from"]
        namespace = source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        reach[namespace] = {p["port"] for p in rule["ports"]}
    assert reach == {"ingress-nginx": {"http"}, "monitoring": {"internal"}}
