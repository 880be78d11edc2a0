"""Rewrite httproute-v1.json from a Gateway API release: the `v1` openAPIV3Schema of the
standard-channel HTTPRoute CRD, as it is, with a `$comment` naming where it came from.

    .venv/bin/python tests/deploy/schemas/refresh_httproute.py v1.6.1
    .venv/bin/python tests/deploy/schemas/refresh_httproute.py v1.6.1 path/to/crd.yaml

Without a path the CRD is downloaded from the release tag on GitHub (the only online step;
the tests read the stored JSON only)."""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from pathlib import Path

import yaml

REPO = "kubernetes-sigs/gateway-api"
CRD = "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
OUT = Path(__file__).with_name("httproute-v1.json")


def main(tag: str, source: str | None = None) -> None:
    if source is None:
        url = f"https://raw.githubusercontent.com/{REPO}/{tag}/{CRD}"
        with urllib.request.urlopen(url, timeout=60) as response:
            raw = response.read()
    else:
        raw = Path(source).read_bytes()
    crd = yaml.safe_load(raw)
    annotations = crd["metadata"]["annotations"]
    bundle = annotations["gateway.networking.k8s.io/bundle-version"]
    channel = annotations["gateway.networking.k8s.io/channel"]
    if (bundle, channel, crd["spec"]["names"]["kind"]) != (tag, "standard", "HTTPRoute"):
        raise SystemExit(f"not the standard HTTPRoute CRD of {tag}: {bundle} {channel}")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = {
        "$comment": (
            f"openAPIV3Schema of version v1 of the HTTPRoute CRD, github.com/{REPO} tag {tag}, "
            f"{CRD} (annotations bundle-version {bundle}, channel {channel}; "
            f"sha256 of the CRD file {hashlib.sha256(raw).hexdigest()}). Unchanged but for this "
            "comment; refresh with tests/deploy/schemas/refresh_httproute.py <tag>."
        ),
        **version["schema"]["openAPIV3Schema"],
    }
    OUT.write_text(json.dumps(schema, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
