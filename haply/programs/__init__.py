"""Supervised programs: the monit pattern (N API workers on their own ports,
restarted when they die or fail their health checks).

    policy.py      one instance's state machine, backoff, crash limit (no I/O)
    spec.py        what to run for an instance: argv, environment, files (no I/O)
    children.py    how a child is started: descriptors, user, parent-death signal
    supervisor.py  ProgramSupervisor: processes, timers, reloads, control commands
    rolling.py     rolling restart: drain, restart, wait healthy, re-enable
    control.py     ProxyControl (the interface to the proxy) and LocalProxyControl
    host.py        start_programs(): wiring for a single-process haply
"""
