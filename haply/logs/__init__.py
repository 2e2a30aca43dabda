"""Logs as HAProxy writes them: formats (tcplog, httplog, clf, log-format, JSON),
syslog framing (RFC 3164, RFC 5424, raw) and sinks that never block the proxy."""

from haply.logs.logger import Logging, ProxyLog

__all__ = ["Logging", "ProxyLog"]
