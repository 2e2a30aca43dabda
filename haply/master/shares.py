"""Connection limits split over N workers (no I/O).

Each worker admits connections on its own, so every limit of the configuration
(global, frontend, bind line and server `maxconn`, server `minconn` and
`maxqueue`, backend `fullconn`, frontend `rate-limit sessions`) is divided
between the workers: worker i gets limit // N, plus one for the first limit % N
workers. The shares add up to the configured limit, so the total is never exceeded; the cost
is that a worker may queue a request while another worker still has a free slot
for that server. A limit smaller than the number of workers cannot be split
without giving some worker nothing, which would make the server unusable from
that worker: each worker then gets 1, and the total may reach N (documented in
docs/process-model.md).
"""

from __future__ import annotations

import dataclasses

from haply.config.model import Config


def share(limit: int | None, index: int, workers: int) -> int | None:
    """Worker index's part of limit (None and 0 mean unlimited and stay so)."""
    if not limit or workers <= 1:
        return limit
    part = limit // workers + (1 if index < limit % workers else 0)
    return max(part, 1)


def for_worker(config: Config, index: int, workers: int) -> Config:
    """config with every connection limit replaced by worker index's share."""
    if workers <= 1:
        return config
    proxies = []
    for proxy in config.proxies:
        servers = tuple(
            dataclasses.replace(server, maxconn=share(server.maxconn, index, workers),
                                minconn=share(server.minconn, index, workers),
                                maxqueue=share(server.maxqueue, index, workers))
            for server in proxy.servers)
        binds = tuple(
            dataclasses.replace(bind, options=tuple(
                (option, str(share(int(value), index, workers)) if option == "maxconn" else value)
                for option, value in bind.options))
            for bind in proxy.binds)
        proxies.append(dataclasses.replace(
            proxy, maxconn=share(proxy.maxconn, index, workers), servers=servers, binds=binds,
            fullconn=share(proxy.fullconn, index, workers),
            rate_limit_sessions=share(proxy.rate_limit_sessions, index, workers)))
    global_ = dataclasses.replace(config.global_,
                                  maxconn=share(config.global_.maxconn, index, workers))
    return dataclasses.replace(config, proxies=tuple(proxies), global_=global_)
