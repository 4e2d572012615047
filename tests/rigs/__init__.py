"""Link-impairment and radio-side rigs for tests and benchmarks (see docs/radio-links.md).

- :mod:`tests.rigs.impair`: the sans-IO link model (delay, jitter, loss, outages) on any clock.
- :mod:`tests.rigs.udp_proxy`, :mod:`tests.rigs.tcp_proxy`: asyncio proxies on loopback that
  apply the model to UDP datagrams and to a TCP byte stream (the relay's WebSocket);
  :mod:`tests.rigs.link` puts both in front of one relay, sharing one outage switch.
- :mod:`tests.rigs.netns`: kernel-level loss, an nftables ``numgen`` rule inside a network
  namespace joined to the host by a veth pair, all created and removed by the test.
- :mod:`tests.rigs.ffmpeg_peer`: Debian's ffmpeg as a real RTP sender and receiver.
- :mod:`tests.rigs.signals`: test signals, WAV files, alignment and correlation, speech.

A rig that cannot run on this machine raises :class:`tests.rigs.tools.RigUnavailable` naming
the missing tool, its Debian package or the missing permission; tests turn that into a skip
(:func:`tests.rigs.tools.skip_unavailable`), and every other failure is a test failure.
"""
