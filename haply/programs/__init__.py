"""Supervised programs: the monit pattern (N API workers on their own ports,
restarted when they die or fail their health checks).

    policy.py      one instance's state machine, backoff, crash limit (no I/O)
    spec.py        what to run for an instance: argv, environment, files (no I/O)
    supervisor.py  ProgramSupervisor: child processes, timers, control commands
    control.py     ProxyControl (the interface to the proxy) and LocalProxyControl
    host.py        start_programs(): wiring for a single-process haply
"""
