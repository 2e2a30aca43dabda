"""`cpu-map`: which CPUs each proxy worker may run on (manual 3.1).

    cpu-map [auto:]<process-set>[/<thread-set>] <cpu-set>...

HAProxy binds threads; haply's workers take their place (`nbthread N` starts N
worker processes), so thread n of the map is worker n (1-based). Sets are a
number, a range `a-b`, `all`, `odd` or `even`; CPU sets are numbers and ranges,
separated by spaces (HAProxy 2.6 reads "0,1" as 0, and so does haply, with a
warning). Without `auto:` every thread of the set may run
on every CPU of the set; with it the threads take the CPUs one each, in order
(the first thread the first CPU), which needs no more CPUs than threads; with
`all` (threads 1-64), `odd` or `even`, as many CPUs as threads in the set.

A line for a process other than 1 binds nothing: since HAProxy 2.5 there is one
process. Nor does a line without a thread set (HAProxy 2.6 leaves its threads
unbound then; `1/all` binds them all). The parser warns about both. Later lines
override earlier ones for the threads they name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ID = 64  # HAProxy's limit on process, thread and CPU numbers (LONGBITS)
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")


class CpuMapError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CpuMapping:
    """One cpu-map line, its sets expanded (threads None: the process only)."""

    process_matches: bool  # the process set holds process 1
    threads: tuple[int, ...] | None
    cpus: tuple[int, ...]
    auto: bool


def _set(text: str, what: str) -> tuple[int, ...]:
    if text == "all":
        return tuple(range(1, MAX_ID + 1))
    if text == "odd":
        return tuple(range(1, MAX_ID + 1, 2))
    if text == "even":
        return tuple(range(2, MAX_ID + 1, 2))
    match = _RANGE.fullmatch(text)
    if not match:
        raise CpuMapError(f"cpu-map: '{text}' is not a valid {what} number or range "
                          "(a number, a-b, all, odd or even)")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 1 <= low <= high <= MAX_ID:
        raise CpuMapError(f"cpu-map: {what} range '{text}' must lie within 1-{MAX_ID}")
    return tuple(range(low, high + 1))


def truncated_lists(words: list[str]) -> list[str]:
    """The CPU words with a comma: HAProxy 2.6 reads only what comes before it."""
    return [word for word in words[1:] if "," in word]


def _cpus(words: list[str]) -> tuple[int, ...]:
    cpus: list[int] = []
    for word in words:
        part = word.split(",", 1)[0]  # "0,1" is CPU 0 to HAProxy 2.6 (observed)
        match = _RANGE.fullmatch(part)
        if not match:
            raise CpuMapError(f"cpu-map: '{part}' is not a CPU number or range")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if low > high or high >= MAX_ID:
            raise CpuMapError(f"cpu-map: CPU range '{part}' must lie within 0-{MAX_ID - 1}")
        cpus.extend(cpu for cpu in range(low, high + 1) if cpu not in cpus)
    if not cpus:
        raise CpuMapError("cpu-map expects [auto:]<process>[/<thread>] and then CPUs")
    return tuple(cpus)


def parse(words: list[str]) -> CpuMapping:
    if len(words) < 2:
        raise CpuMapError("cpu-map expects [auto:]<process>[/<thread>] and then CPUs")
    target = words[0]
    auto = target.startswith("auto:")
    if auto:
        target = target[5:]
    process_text, slash, thread_text = target.partition("/")
    processes = _set(process_text, "process")
    threads = _set(thread_text, "thread") if slash else None
    cpus = _cpus(words[1:])
    if auto and threads is not None and thread_text not in ("all", "odd", "even") \
            and len(cpus) > len(threads):
        raise CpuMapError(f"cpu-map: {len(threads)} thread(s) and {len(cpus)} CPUs: with auto: "
                          "each thread takes one CPU, so give no more CPUs than threads")
    if auto and threads is not None and thread_text in ("all", "odd", "even") \
            and len(cpus) not in (1, len(threads)):
        # `all` is threads 1-64 (odd, even: 32 of them), so HAProxy 2.6 takes
        # `auto:1/all 0-63` and refuses `auto:1/all 0-1` (observed)
        raise CpuMapError(f"cpu-map: auto:1/{thread_text} is {len(threads)} threads and needs as "
                          f"many CPUs (got {len(cpus)}), as HAProxy 2.6 pairs them one to one")
    return CpuMapping(1 in processes, threads, cpus, auto)


def cpus_for_worker(mappings: tuple[CpuMapping, ...], worker: int) -> tuple[int, ...] | None:
    """The CPUs worker n (1-based) is bound to, None if no line names it."""
    chosen = None
    for mapping in mappings:
        if not mapping.process_matches or mapping.threads is None:
            continue
        if worker in mapping.threads:
            if mapping.auto:
                position = mapping.threads.index(worker)
                if position < len(mapping.cpus):
                    chosen = (mapping.cpus[position],)
            else:
                chosen = mapping.cpus
    return chosen


__all__ = ["CpuMapError", "CpuMapping", "cpus_for_worker", "parse", "truncated_lists"]
