"""VRRP (RFC 3768 v2, RFC 5798 v3, IPv4): the virtual IP follows a healthy node.

Rooms, one job each:
  packet.py     advertisement codec (bytes <-> Advertisement), receiver checks
  state.py      the per-instance state machine: events + now in, actions out
  io.py         the raw IPPROTO_VRRP socket of an instance
  addresses.py  VIPs on/off; the SIGKILL guard
  netlink.py    the add/remove address request itself (on the failover's path)
  garp.py       gratuitous ARP through AF_PACKET
  scripts.py    vrrp_script / track_interface / track_proxy trackers, notify runs
  service.py    the process: wires the above on one event loop; run(), query(),
                `watch vrrp` pushes for the stats page (haply.admin.vrrp_status)

Configuration comes from haply.config.keepalived (keepalived.conf dialect).
`python -m haply.vrrp -f keepalived.conf [--control SOCKET]` runs it alone.
"""
