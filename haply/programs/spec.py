"""What to run for one instance of a program, and which servers are instances.

Pure functions over the model: the supervisor asks `launch()` for an
instance's argv, environment and files, and `instance_servers()` for the
backend servers that `program-servers` made of a program's instances (so that
a server marked DOWN can be traced back to the process to restart, and a
rolling restart knows what to drain).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from haply.config.model import Config, Program
from haply.config.programs import INSTANCE_HOST

# Environment given to every instance, beside the program's own `setenv`s.
PORT_VARIABLE = "HAPLY_PORT"
INSTANCE_VARIABLE = "HAPLY_INSTANCE"
PROGRAM_VARIABLE = "HAPLY_PROGRAM"


@dataclass(frozen=True, slots=True)
class Launch:
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None
    stdout: str | None
    stderr: str | None
    pidfile: str | None
    stop_argv: tuple[str, ...]


def substitute(text: str, port: int | None, instance: int) -> str:
    """`%p` -> port, `%i` -> instance number, `%%` -> `%`; anything else as written."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "%" and i + 1 < len(text) and text[i + 1] in "pi%":
            code = text[i + 1]
            out.append("%" if code == "%" else str(instance) if code == "i" else ("" if port is None else str(port)))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def launch(program: Program, instance: int, environ: Mapping[str, str]) -> Launch:
    port = program.port_of(instance)

    def sub(text: str | None) -> str | None:
        return None if text is None else substitute(text, port, instance)

    env = dict(environ)
    env.update((name, sub(value)) for name, value in program.environment)
    env[INSTANCE_VARIABLE] = str(instance)
    env[PROGRAM_VARIABLE] = program.name
    if port is not None:
        env[PORT_VARIABLE] = str(port)
    return Launch(
        argv=tuple(sub(word) for word in program.command), env=env, cwd=program.directory,
        stdout=sub(program.stdout), stderr=sub(program.stderr), pidfile=sub(program.pidfile),
        stop_argv=tuple(sub(word) for word in program.stop_command),
    )


def instance_servers(config: Config) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """(program, instance) -> [(backend, server)] for the servers program-servers
    made: named PROGRAM-I at 127.0.0.1 on the instance's port."""
    found: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for program in config.programs:
        if program.port is None:
            continue
        for instance in range(1, program.instances + 1):
            name, port = f"{program.name}-{instance}", program.port_of(instance)
            for proxy in config.backends:
                for server in proxy.servers:
                    if server.name == name and server.host == INSTANCE_HOST and server.port == port:
                        found.setdefault((program.name, instance), []).append((proxy.name, server.name))
    return found


__all__ = ["INSTANCE_VARIABLE", "Launch", "PORT_VARIABLE", "PROGRAM_VARIABLE", "instance_servers", "launch",
           "substitute"]
