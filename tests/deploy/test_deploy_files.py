"""Every example config in deploy/ loads through the real loaders; the compose file and the
Containerfile are parsed and checked (the image is not built: that needs a registry).

The systemd units are checked in test_systemd.py, the Kubernetes manifests in test_k8s.py,
and the three-agency example is run in test_three_agency.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bridge.cli.endpoint import load_endpoint_config
from bridge.config import load_relay_settings
from bridge.errors import ConfigError
from tests.deploy.files import (
    DEPLOY,
    ENDPOINTS,
    ETC,
    EXAMPLE,
    ROOT,
    SERVICES,
    check_service,
    state_dir,
)

CONFIGS = sorted(p for d in ("examples", "three-agency") for p in (DEPLOY / d).rglob("*.yaml"))


def load(path: Path) -> Any:
    """A deploy/ config through the loader ``crossband`` uses for it."""
    if path.name.startswith("relay"):
        return load_relay_settings(path)
    if path.name.startswith("endpoint"):
        return load_endpoint_config(path)
    raise AssertionError(f"{path}: neither a relay nor an endpoint config; add its loader here")


def test_the_examples_are_the_configs_we_think() -> None:
    names = [p.relative_to(DEPLOY).as_posix() for p in CONFIGS]
    assert names == [
        "examples/endpoint-gateway.yaml",
        "examples/relay.yaml",
        "three-agency/ca-rcmp/endpoint.yaml",
        "three-agency/mx-gn/endpoint.yaml",
        "three-agency/relay/relay.yaml",
        "three-agency/us-cbp/endpoint.yaml",
    ]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_example_config_loads_through_the_real_loader(path: Path) -> None:
    load(path)


def test_a_broken_copy_is_refused_so_the_loading_test_can_fail(tmp_path: Path) -> None:
    copy = tmp_path / "endpoint.yaml"
    copy.write_text((EXAMPLE / "mx-gn" / "endpoint.yaml").read_text() + "relay_kye: x\n")
    with pytest.raises(ConfigError, match="relay_kye: unknown setting"):
        load(copy)


def test_the_three_agency_configs_agree_with_each_other() -> None:
    relay = load_relay_settings(EXAMPLE / "relay" / "relay.yaml")
    readme = (EXAMPLE / "README.md").read_text()
    assert f"crossband keys relay --id {relay.relay_id} " in readme
    assert relay.tls_cert is not None and relay.udp_port
    for name in ENDPOINTS:
        cfg = load_endpoint_config(EXAMPLE / name / "endpoint.yaml")
        s = cfg.settings
        url = urlsplit(s.relay)
        assert (url.scheme, url.port) == ("wss", relay.port), name  # TLS, the relay's port
        assert s.relay_key is not None and s.tls_ca is not None, name  # pinned, own CA
        assert [p.name for p in s.revocation_lists] == [p.name for p in relay.revocation_lists]
        assert s.trust_bundle.name == relay.trust_bundle.name
        assert s.device_key.parent.name == "keys", name  # the 0700 folder of the walkthrough
        assert [m.channel for m in cfg.rtp] == ["shiprider-4471"], name
        state_dir(EXAMPLE / name / "endpoint.yaml")
    state_dir(EXAMPLE / "relay" / "relay.yaml")
    # the observer's post listens only: an RTP output, no input to key up from
    (mx,) = load_endpoint_config(EXAMPLE / "mx-gn" / "endpoint.yaml").rtp
    assert mx.input is None and mx.output is not None


# -- compose -------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def _volume(spec: str) -> tuple[str, PurePosixPath, bool]:
    source, target, *mode = spec.split(":")
    return source, PurePosixPath(target), mode == ["ro"]


def test_compose_services_run_real_commands_with_configs_that_exist_in_deploy() -> None:
    doc = compose()
    services = doc["services"]
    assert sorted(services) == sorted(SERVICES)
    for name, svc in services.items():
        kind, config = check_service(svc["command"], name)
        mounts = [_volume(v) for v in svc["volumes"]]
        binds = [(s, t, ro) for s, t, ro in mounts if s.startswith(".")]
        # its own folder only (no other service's keys), read-only, at /etc/crossband/NAME
        assert binds == [(f"./three-agency/{name}", ETC / name, True)], name
        for source, _, _ in binds:
            assert (DEPLOY / source).resolve() == config.parent
        named = {t: s for s, t, _ in mounts if not s.startswith(".")}
        assert named == {state_dir(config): f"{name}-state"}, name
        assert f"{name}-state" in doc["volumes"]
        # hardening, from the shared anchor
        assert svc["user"] == "10001:10001" and svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"]
        assert svc["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        if kind == "endpoint":
            assert svc["depends_on"] == ["relay"]
    relay = load_relay_settings(EXAMPLE / "relay" / "relay.yaml")
    published = {p.split("#")[0].strip() for p in services["relay"]["ports"]}
    assert published == {f"{relay.port}:{relay.port}/tcp", f"{relay.udp_port}:{relay.udp_port}/udp"}
    # the endpoints reach the relay by the name in their relay URL (and in its certificate)
    aliases = services["relay"]["networks"]["default"]["aliases"]
    for name in ENDPOINTS:
        url = load_endpoint_config(EXAMPLE / name / "endpoint.yaml").settings.relay
        assert urlsplit(url).hostname in aliases


# -- Containerfile ---------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_containerfile_base_libopus_wheels_only_and_a_non_root_user() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "docker.io/library/python:3.11-slim-bookworm")
    runs = [rest for word, rest in steps if word == "RUN"]
    assert any("apt-get install -y --no-install-recommends libopus0 " in r for r in runs)
    apt = [part for r in runs for part in r.split("&&") if "apt-get install" in part]
    assert apt and not any(re.search(r"\b(gcc|build-essential|-dev|clang)\b", a) for a in apt)
    pips = [shlex.split(part) for r in runs for part in r.split("&&") if "pip install" in part]
    assert len(pips) == 1, pips  # one install, and no second try that could compile
    (pip,) = pips
    assert "--only-binary=:all:" in pip and "--no-binary=opuslib" in pip  # opuslib: pure Python
    assert any("command -v cc gcc c++" in r and "exit 1" in r for r in runs)  # no compiler
    # every COPY source exists and is let through the build context's ignore file
    ignore = (DEPLOY / "Containerfile.dockerignore").read_text().split()
    for word, rest in steps:
        if word == "COPY":
            *sources, _ = rest.split()
            for src in sources:
                assert (ROOT / src).exists(), src
                assert f"!{src}" in ignore or f"!{src}/" in ignore, src
    (user,) = [rest for word, rest in steps if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert compose()["services"]["relay"]["user"] == user
    (arg,) = [rest for word, rest in steps if word == "ARG"]
    (listed,) = shlex.split(arg.partition("=")[2])  # the default: one quoted word
    assert sorted(listed.split()) == sorted(SERVICES)  # their state dirs, 0700
    assert any('install -d -m 0700 -o 10001 -g 10001 "/var/lib/crossband/$s"' in r for r in runs)
    assert ("ENTRYPOINT", '["/opt/crossband/bin/crossband"]') in steps
