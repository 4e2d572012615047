"""``crossband demo`` (:mod:`bridge.demo.main`) and what the tests share with it: the
three-agency builder (:mod:`bridge.demo.world`) and the relay child process
(:mod:`bridge.demo.relay_process`). Nothing in the runtime imports this package (see
``.importlinter``); tests and the CLI's ``demo`` command do."""
