"""Runtime DNS resolution of servers' addresses (`resolvers` sections, manual 5.3).

- resolution: the state machine of one host name's resolution (pure);
- wire: DNS messages in and out, through dnspython (pure);
- service: the UDP sockets and timers, and the servers' addresses changed.
"""
