"""Stick tables shared with other load balancers: HAProxy's peers protocol
(`peers` sections, `stick-table ... peers NAME`), so that a client stuck to a
server stays on it when the virtual address moves to another node, whether
that node runs haply or HAProxy."""
