"""Layer 5, the service: everything that turns the emulated platform into a running daemon.

    daemon.py    one mount: platform + driver + FUSE in one Trio run; signals; sd_notify
    spawn.py     start a daemon in the background and stop it (CLI, runner, demo, fixtures)
    session.py   what a control command may touch: the platform, the driver, the mountpoint
    registry.py  how a control command is declared once (schema, handler, CLI, printing)
    commands.py  the control commands themselves, each declared once
    control.py   the control socket: framing, validation, server, client
    cli.py       the ``lfafs`` command line
    runner.py    ``lfafs run``;  demo.py ``lfafs demo``;  bench/ ``lfafs bench``
    state.py     flash persistence under --state-dir;  sdnotify.py  systemd's notify protocol
    testing.py   the pytest fixtures (``lfafs.testing`` re-exports them)

Nothing here is imported by layers 1-4.
"""
