"""The master process (`haply -W`): owns the listening sockets, runs the proxy
workers, the VRRP process and the programs as children, and reloads without
refusing a connection. See process.py for the lifecycle.
"""
