"""deploy/k8s/: the manifests parse and carry what they need.

The relay: a Deployment of one (Recreate), state on a PersistentVolumeClaim, readiness and
liveness on /healthz, Prometheus annotations for /metrics, a Service to its ports. An endpoint:
a StatefulSet with its state in a volume claim template and a governing headless Service.
Every pod: runAsNonRoot, every container with a read-only root file system, no privilege
escalation and no capability; key files from Secrets (defaultMode 0400/0600) installed 0600
where the config reads them; the command a real ``crossband`` command on an example config.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bridge.cli.endpoint import load_endpoint_config
from bridge.config import load_relay_settings
from tests.deploy.files import DEPLOY, ETC, check_service, state_dir

K8S = DEPLOY / "k8s"
MANIFESTS = ("relay.yaml", "endpoint.yaml")


def documents(name: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]
    for d in docs:
        assert {"apiVersion", "kind", "metadata", "spec"} <= set(d), (name, d.get("kind"))
        assert d["metadata"]["name"].startswith("crossband-")
    return docs


def by_kind(name: str) -> dict[str, dict[str, Any]]:
    docs = documents(name)
    kinds = {d["kind"]: d for d in docs}
    assert len(kinds) == len(docs), f"{name}: one object of each kind"
    return kinds


def test_the_kustomization_names_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(MANIFESTS)
    assert sorted(p.name for p in K8S.glob("*.yaml")) == sorted([*MANIFESTS, "kustomization.yaml"])


def check_pod(workload: dict[str, Any], name: str) -> tuple[dict[str, Any], Path]:
    """The checks every pod template passes; returns (main container, its config file)."""
    template = workload["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
    for secret in (v["secret"] for v in volumes.values() if "secret" in v):
        assert secret["defaultMode"] in (0o400, 0o600), secret
    containers = pod["initContainers"] + pod["containers"]
    for c in containers:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        for m in c["volumeMounts"]:
            assert m["name"] in volumes or m["name"] in claims, (c["name"], m["name"])
    (main,) = pod["containers"]
    _, config = check_service(main["args"], name)
    mounts = {PurePosixPath(m["mountPath"]): m for m in main["volumeMounts"]}
    etc = mounts[ETC / name]
    assert etc.get("readOnly") is True and "emptyDir" in volumes[etc["name"]]
    state = mounts[state_dir(config)]
    assert "emptyDir" not in volumes.get(state["name"], {})  # persistent, not in memory
    (init,) = pod["initContainers"]
    assert [m["name"] for m in init["volumeMounts"] if m["mountPath"] == str(ETC / name)] == [
        etc["name"]
    ]
    return main, config


def installed(init: dict[str, Any]) -> dict[str, str]:
    """What the init container's script installs: {relative path: mode}."""
    script = init["command"][-1]
    out = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if words[:2] == ["install", "-m"]:
            out[words[-1]] = words[2]
    return out


def test_the_relay_deployment_service_probes_metrics_and_state() -> None:
    objs = by_kind("relay.yaml")
    assert set(objs) == {"PersistentVolumeClaim", "Deployment", "Service"}
    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    main, config = check_pod(dep, "relay")
    relay = load_relay_settings(config)
    ports = {p["name"]: p for p in main["ports"]}
    assert (ports["wss"]["containerPort"], ports["wss"]["protocol"]) == (relay.port, "TCP")
    assert (ports["voice"]["containerPort"], ports["voice"]["protocol"]) == (relay.udp_port, "UDP")
    scheme = "HTTPS" if relay.tls_cert is not None else "HTTP"
    for probe in (main["readinessProbe"], main["livenessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": "wss", "scheme": scheme}
    notes = dep["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/path"] == "/metrics"
    assert int(notes["prometheus.io/port"]) == relay.port
    pod = dep["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    claim = volumes[mounts[str(state_dir(config))]]["persistentVolumeClaim"]["claimName"]
    assert claim == objs["PersistentVolumeClaim"]["metadata"]["name"]
    # the key files the config names are installed 0600 from the Secrets
    base = config.parent
    keys = {Path(p).relative_to(base).as_posix() for p in (relay.relay_key, relay.tls_key) if p}
    modes = installed(pod["initContainers"][0])
    assert {k: modes[k] for k in keys} == {k: "0600" for k in keys}
    svc = objs["Service"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert {(p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]} == {
        ("wss", "TCP"),
        ("voice", "UDP"),
    }


def test_the_endpoint_statefulset_keeps_its_state_and_its_key_0600() -> None:
    objs = by_kind("endpoint.yaml")
    assert set(objs) == {"Service", "StatefulSet"}
    sts = objs["StatefulSet"]
    assert sts["spec"]["replicas"] == 1  # one device identity
    name = sts["metadata"]["name"].removeprefix("crossband-")
    main, config = check_pod(sts, name)
    cfg = load_endpoint_config(config)
    svc = objs["Service"]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None"
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    (template,) = sts["spec"]["volumeClaimTemplates"]
    assert mounts[str(state_dir(config))] == template["metadata"]["name"]
    modes = installed(sts["spec"]["template"]["spec"]["initContainers"][0])
    assert modes[Path(cfg.settings.device_key).relative_to(config.parent).as_posix()] == "0600"
    (rtp,) = cfg.rtp
    assert rtp.input is not None
    assert {(p["containerPort"], p["protocol"]) for p in main["ports"]} == {
        (rtp.input.transport.port, "UDP")
    }


@pytest.mark.parametrize("name", MANIFESTS)
def test_no_manifest_carries_key_material(name: str) -> None:
    text = (K8S / name).read_text()
    assert not re.search(r"^\s*(data|stringData):", text, re.M)  # Secrets are made from files
    assert "PRIVATE KEY" not in text
