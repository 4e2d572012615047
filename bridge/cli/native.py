"""The native sections of endpoint.yaml (rtp, xmpp, mumble, cot, sip) as gateway bindings.

Each section is checked by its adapter's own loader (``adapters.<name>.mapping``/``config``)
when the file is loaded, so ``crossband endpoint`` refuses a bad section before it connects;
an :class:`~adapters.errors.AdapterConfigError` becomes one ``ConfigError`` line naming the
file and the setting. File names inside a section (``password_file``, ``cert_file``,
``key_file``, ``ca_file``) are relative to ``endpoint.yaml``, like every other path in it.
Secrets are read by the adapters' loaders (0600 files only) and never echoed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.config import config_error
from bridge.gateway import Binding, ChannelAudio

if TYPE_CHECKING:
    from adapters.cot.adapter import CotConfig
    from adapters.mumble.config import MumbleConfig
    from adapters.rtp.mapping import ChannelMapping
    from adapters.sip.config import SipConfig
    from adapters.xmpp.mapping import XmppConfig

__all__ = ["NativeSections", "load_native", "native_bindings", "resolve_paths"]

PATH_KEYS = frozenset({"password_file", "cert_file", "key_file", "ca_file"})


@dataclass(frozen=True)
class NativeSections:
    rtp: list[ChannelMapping] = field(default_factory=list)
    xmpp: XmppConfig | None = None
    mumble: list[MumbleConfig] = field(default_factory=list)
    cot: list[tuple[str, CotConfig]] = field(default_factory=list)
    sip: SipConfig | None = None

    def __bool__(self) -> bool:
        return bool(self.rtp or self.xmpp or self.mumble or self.cot or self.sip)


def resolve_paths(section: Any, base: Path) -> Any:
    """``section`` with every relative file name under :data:`PATH_KEYS` made relative to
    ``base`` (the directory of endpoint.yaml); nothing else changes."""
    if isinstance(section, dict):
        return {
            k: (
                str(base / v)
                if k in PATH_KEYS and isinstance(v, str) and v and not Path(v).is_absolute()
                else resolve_paths(v, base)
            )
            for k, v in section.items()
        }
    if isinstance(section, list):
        return [resolve_paths(v, base) for v in section]
    return section


def _checked(source: str | Path, name: str, load: Callable[[], Any]) -> Any:
    from adapters.errors import AdapterConfigError, AdapterError

    try:
        return load()
    except AdapterConfigError as exc:
        setting = exc.setting if exc.setting.startswith(name) else f"{name}.{exc.setting}"
        raise config_error(source, setting, exc.problem) from None
    except AdapterError as exc:
        raise config_error(source, name, str(exc)) from None


def load_native(
    rtp: dict[Any, Any] | None,
    xmpp: dict[Any, Any] | None,
    mumble: dict[Any, Any] | None,
    cot: dict[Any, Any] | None,
    source: str | Path,
    sip: dict[Any, Any] | None = None,
) -> NativeSections:
    """Every native section through its adapter's loader (module docstring)."""
    base = Path(source).parent
    found: dict[str, Any] = {}
    if rtp is not None:
        from adapters.rtp.mapping import load_gateway_config

        found["rtp"] = _checked(source, "rtp", lambda: load_gateway_config(rtp))
    if xmpp is not None:
        from adapters.xmpp.mapping import load_xmpp_config

        section = resolve_paths(xmpp, base)
        found["xmpp"] = _checked(source, "xmpp", lambda: load_xmpp_config(section))
    if mumble is not None:
        from adapters.mumble.config import load_mumble_config

        section = resolve_paths(mumble, base)
        found["mumble"] = _checked(source, "mumble", lambda: load_mumble_config(section))
    if cot is not None:
        from adapters.cot.config import load_cot_config

        found["cot"] = _checked(source, "cot", lambda: load_cot_config(cot))
    if sip is not None:
        from adapters.sip.config import load_sip_config

        section = resolve_paths(sip, base)
        found["sip"] = _checked(source, "sip", lambda: load_sip_config(section))
    return NativeSections(**found)


def native_bindings(native: NativeSections, source: str | Path) -> list[Binding]:
    """One binding per mapped channel of every native section."""
    bindings: list[Binding] = []
    if native.rtp:
        from adapters.rtp.adapter import RtpAdapter

        for i, m in enumerate(native.rtp):
            try:
                audio = ChannelAudio(m.codec, m.bitrate, m.jitter_min_ms, m.jitter_max_ms)
                bindings.append(Binding(m.channel, RtpAdapter(m), audio))
            except ValueError as exc:
                raise config_error(source, f"rtp.channels[{i}]", str(exc)) from None
    if native.xmpp is not None:
        from adapters.xmpp.adapter import xmpp_adapters

        xmpp = native.xmpp
        rooms = _checked(source, "xmpp", lambda: xmpp_adapters(xmpp))
        bindings += [Binding(channel, adapter) for channel, adapter in rooms]
    if native.mumble:
        from adapters.mumble.adapter import MumbleAdapter

        for cfg in native.mumble:
            bindings.append(Binding(cfg.channel, MumbleAdapter(cfg), ChannelAudio()))
    if native.cot:
        from adapters.cot.adapter import CotAdapter

        bindings += [Binding(channel, CotAdapter(cfg)) for channel, cfg in native.cot]
    if native.sip is not None:
        from adapters.sip.adapter import sip_adapters

        sip = native.sip
        lines = _checked(source, "sip", lambda: sip_adapters(sip))
        bindings += [Binding(channel, adapter) for channel, adapter in lines]
    return bindings
