"""adapters.rtp.mapping: the gateway's YAML mapping, and the errors an operator sees."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from adapters.errors import AdapterConfigError
from adapters.rtp.mapping import load_gateway_config

EXAMPLE = """
rate: 16000
channels:
  - channel: shiprider-7
    priority: high
    input:
      port: 5004
      payloads: [pcmu, {name: l16, pt: 97, clock_rate: 16000}]
      hang_time: 0.4
      end_signal_pt: 13
    output:
      host: 127.0.0.1
      port: 5006
      payload: {name: opus, pt: 111}
      ssrc_mode: continuous
  - channel: border-ops
    codec: l16
    jitter: {min_ms: 60, max_ms: 300}
    input: {group: 239.1.2.3, interface: 127.0.0.1, port: 6000, payload: pcma}
"""


def test_example_mapping_loads() -> None:
    first, second = load_gateway_config(yaml.safe_load(EXAMPLE))
    assert first.channel == "shiprider-7" and first.priority == "high" and first.codec == "opus"
    assert first.input is not None and first.output is not None
    assert [p.name for p in first.input.receiver.payloads] == ["pcmu", "l16"]
    assert first.input.receiver.payloads[0].pt == 0 and first.input.receiver.rate == 16000
    assert first.input.receiver.hang_time == 0.4 and first.input.receiver.end_signal_pt == 13
    assert first.output.sender.payload.pt == 111 and first.output.sender.payload.clock_rate == 48000
    assert first.output.sender.ssrc_mode == "continuous" and first.output.transport.port == 5006
    assert second.codec == "l16" and second.output is None
    assert second.jitter_min_ms == 60 and second.jitter_max_ms == 300
    assert second.input is not None and second.input.transport.group == "239.1.2.3"


def channel(**kw: Any) -> dict[str, Any]:
    return {"channels": [{"channel": "c1", **kw}]}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"channels": []}, "non-empty list"),
        ({"rate": 44100, **channel(input={"port": 1, "payload": "pcmu"})}, "rtp.rate"),
        ({"chanels": []}, "unknown key(s) chanels"),
        (channel(), "an input, an output or both"),
        (channel(input={"payload": "pcmu"}), "port is required"),
        (channel(input={"port": 1}), "exactly one of payload or payloads"),
        (channel(input={"port": 1, "payload": "gsm"}), "payload name must be"),
        (channel(input={"port": 1, "payload": "opus"}), "dynamic payload type"),
        (channel(input={"port": 1, "payload": "pcmu", "hangtime": 1}), "unknown key(s) hangtime"),
        (channel(input={"port": 1, "payload": "pcmu", "hang_time": 0}), "hang_time"),
        (channel(input={"port": 70000, "payload": "pcmu"}), "port"),
        (channel(output={"port": 1}), "payload is required"),
        (channel(output={"port": 1, "payload": "pcmu", "ssrc_mode": "x"}), "ssrc_mode"),
        (channel(codec="g729", output={"port": 1, "payload": "pcmu"}), "codec"),
        (channel(priority="urgent", output={"port": 1, "payload": "pcmu"}), "priority"),
        (channel(bitrate=100, output={"port": 1, "payload": "pcmu"}), "bitrate"),
        (
            channel(jitter={"min_ms": 300, "max_ms": 200}, output={"port": 1, "payload": "pcmu"}),
            "min_ms must not exceed max_ms",
        ),
        ({"channels": [{"input": {"port": 1, "payload": "pcmu"}}]}, "channel (the channel id)"),
        (
            {
                "channels": [
                    {"channel": "a", "input": {"port": 5004, "payload": "pcmu"}},
                    {"channel": "b", "input": {"port": 5004, "payload": "pcma"}},
                ]
            },
            "used by both a and b",
        ),
        (
            {
                "channels": [
                    {"channel": "a", "output": {"port": 1, "payload": "pcmu"}},
                    {"channel": "a", "output": {"port": 2, "payload": "pcmu"}},
                ]
            },
            "mapped twice",
        ),
        ("not a mapping", "expected a mapping"),
    ],
)
def test_config_errors_name_the_problem(config: Any, message: str) -> None:
    with pytest.raises(AdapterConfigError) as info:
        load_gateway_config(config)
    assert message in str(info.value)
    assert info.value.setting.startswith("rtp") and info.value.problem  # for the file's name
