"""Open the example's incident channel from a dispatcher's endpoint config, then exit.

Until ``crossband channel open`` and the console exist (issue 11), this is how a headless site
opens an incident channel. Run it with the dispatcher device's own ``endpoint.yaml``, while
that device's ``crossband endpoint`` service is stopped (they share the device key and the
state file); start the service afterwards and it is in the channel::

    python open_channel.py --config us-cbp/endpoint.yaml --channel shiprider-4471 \\
        --agreement public/agr.json --name "Shiprider incident 4471" --hours 6 \\
        --member public/us-cbp_dispatch-blaine.cred=dispatcher \\
        --member public/ca-rcmp_gw-pacific.cred=member \\
        --member public/mx-gn_liaison-1.cred=observer \\
        --say "channel open"

The endpoint is built exactly as ``crossband endpoint`` builds it (the same loaders and
checks), so a config problem is the same one line, exit status 2. ``--say`` sends one signed
text message once the channel is open. It prints the channel's epoch and the message's id,
never its text.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from bridge.cli.endpoint import build_endpoint, load_endpoint_config
from crypto.agreement import Agreement
from crypto.errors import CrossbandError
from crypto.identity import ROLES, Credential

CONNECT_TIMEOUT = 30.0  # seconds to reach and log in to the relay
REQUEST_TIMEOUT = 30.0  # seconds for the relay to accept the commit, and the message


def member(text: str) -> tuple[Path, str]:
    path, sep, role = text.rpartition("=")
    if not sep or role not in ROLES:
        raise argparse.ArgumentTypeError(f"a member is CREDENTIAL=ROLE, ROLE one of {ROLES}")
    return Path(path), role


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--config", required=True, type=Path, help="the dispatcher's endpoint.yaml")
    ap.add_argument("--channel", required=True, help="channel id, e.g. shiprider-4471")
    ap.add_argument("--agreement", required=True, type=Path, help="the signed agreement")
    ap.add_argument("--name", default=None, help="the channel's display name")
    ap.add_argument("--hours", type=float, default=6.0, help="expiry (default: %(default)s)")
    ap.add_argument("--member", required=True, action="append", type=member, default=[])
    ap.add_argument("--say", default=None, help="a text message to send once it is open")
    return ap.parse_args(argv)


async def open_channel(args: argparse.Namespace) -> None:
    cfg = load_endpoint_config(args.config)
    endpoint = build_endpoint(cfg, time.time())
    agreement = Agreement.decode(args.agreement.read_bytes())
    members = [(Credential.decode(path.read_bytes()), role) for path, role in args.member]
    await endpoint.start()
    try:
        await endpoint.wait_connected(CONNECT_TIMEOUT)
        commit = await endpoint.commit(
            args.channel,
            members,
            agreement=agreement,
            name=args.name,
            expires=int(time.time() + args.hours * 3600),
            timeout=REQUEST_TIMEOUT,
        )
        print(f"opened {args.channel} epoch {commit.epoch} with {len(members)} members")
        if args.say is not None:
            msg_id = await endpoint.send_text(args.channel, args.say, timeout=REQUEST_TIMEOUT)
            print(f"sent message {msg_id} to {args.channel}")
    finally:
        await endpoint.stop()


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        asyncio.run(open_channel(args))
    except (CrossbandError, OSError, TimeoutError) as exc:
        print(f"open_channel: error: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
