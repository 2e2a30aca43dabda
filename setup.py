"""haply compiles its request path with mypyc when it can, else stays pure Python.

The modules every HTTP request goes through (client session, server
connection, head rewriting, framing, balancing, timers) are compiled with
mypyc into C extensions that sit beside the .py files and are imported in
their place: their classes become C structs and their calls to one another
direct C calls, which makes a keep-alive request about a quarter cheaper in
instructions (bench/RESULTS.md). The .py files are installed too.

HAPLY_MYPYC chooses the build:

    unset   compile; if that fails (no C compiler, no Python headers, a mypyc
            error), warn on stderr and install pure Python. Editable installs
            (pip install -e .) stay pure: compiled modules in a source tree
            would shadow edits to the .py files.
    1       compile, editable installs too; a failure fails the build.
    0       pure Python.

    pip install .                                  # pip fetches mypy for the build
    pip install mypy && python setup.py build_ext --inplace   # in a source tree
"""

import os
import re
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
# mypy reads the paths and its configuration from here, and mypyc's generated
# sources (build/) are named relative to it: every command works from here.
os.chdir(HERE)

# Compiled together so that their calls to one another are native. A class
# subclassed elsewhere must be compiled too (DynamicLimitBackend subclasses
# BackendRuntime): an interpreted class cannot inherit from a compiled one.
COMPILED = [
    "haply/proxy/http.py",
    "haply/proxy/upstream.py",
    "haply/proxy/backend.py",
    "haply/proxy/dynamic_backend.py",
    "haply/proxy/route.py",
    "haply/proxy/outbox.py",
    "haply/proxy/timers.py",
    "haply/http/headers.py",
    "haply/http/framing.py",
    "haply/logs/exchange.py",
    "haply/logs/httplog_line.py",
]
GROUP = "haply"
# What a build produces: one shared library holding the compiled code of the
# whole group, and one small shim extension per module that loads it.
EXTENSION_NAMES = [f"{GROUP}__mypyc"] + [p[:-3].replace("/", ".") for p in COMPILED]

MODE = os.environ.get("HAPLY_MYPYC", "").strip()
if MODE not in ("", "0", "1"):
    sys.exit(f"setup.py: HAPLY_MYPYC={MODE!r}: use 1 (compile, or fail), 0 (pure Python), "
             "or leave it unset (compile, pure Python if that fails)")


def warn(reason: str, remedy: str) -> None:
    print(f"WARNING: haply: installing pure Python, not the compiled request path: {reason}; "
          f"to compile it, {remedy}", file=sys.stderr)


class MypyMissing(Exception):
    pass


class HaplyDistribution(Distribution):
    # The extensions are only known once mypyc has run (build_ext below), but
    # the build needs to know beforehand that there are some: build runs
    # build_ext, and the wheel is tagged for this platform and Python.
    def has_ext_modules(self) -> bool:
        return MODE != "0" or super().has_ext_modules()


class BuildMypyc(build_ext):
    """Compiles COMPILED with mypyc; all or nothing."""

    def run(self) -> None:
        self.extensions = []
        self.requested_inplace = self.inplace  # build_ext.run clears it while it builds
        editable = getattr(self, "editable_mode", False) or "develop" in self.distribution.command_obj
        if MODE == "0" or (editable and MODE == ""):
            if editable and MODE == "":
                print("haply: editable install, pure Python (compiled modules would shadow "
                      "edited .py files; `python setup.py build_ext --inplace` compiles them)",
                      file=sys.stderr)
            self.remove_outputs()
            return
        try:
            self.set_extensions(self.mypycify())
            super().run()
            missing = [path for path in self.output_paths() if not os.path.exists(path)]
            if missing:
                raise RuntimeError(f"not built: {', '.join(missing)}")
        except (Exception, SystemExit) as exc:
            # A partial build (the group library without a shim, or the reverse)
            # must not be installed: remove every output, the .py files stay.
            self.extensions = []
            self.remove_outputs()
            if MODE == "1":
                raise
            if isinstance(exc, MypyMissing):
                warn("mypy is not installed", "pip install mypy, then reinstall")
            elif isinstance(exc, SystemExit):
                warn("mypyc failed", "see its errors with HAPLY_MYPYC=1 pip install -v .")
            else:
                detail = (str(exc).splitlines() or [type(exc).__name__])[0]
                # "Command '['gcc', ...all its arguments...]' returned ...": the program is enough
                detail = re.sub(r"Command '\['([^']*)'.*\]' returned", r"'\1' returned", detail)
                warn(f"the C build failed ({detail})",
                     "install a C compiler and the Python headers (Debian: gcc python3-dev), "
                     "then reinstall")

    def mypycify(self) -> list:
        try:
            from mypyc.build import mypycify
        except ImportError as exc:
            raise MypyMissing() from exc
        return mypycify(["--config-file", "mypyc.ini", *COMPILED], group_name=GROUP,
                        opt_level="3")

    def set_extensions(self, extensions: list) -> None:
        # What finalize_options did for the (then empty) list of extensions;
        # mypyc's are plain extensions, none a setuptools Library.
        self.check_extensions_list(extensions)
        self.extensions = self.distribution.ext_modules = extensions
        for ext in extensions:
            ext._full_name = self.get_ext_fullname(ext.name)
            ext._links_to_dynamic = ext._needs_stub = False
            ext._file_name = self.get_ext_filename(ext._full_name)
            self.ext_map[ext._full_name] = self.ext_map[ext._full_name.split(".")[-1]] = ext

    def output_paths(self) -> list[str]:
        """Where the extensions go: the build directory, and the tree if in place."""
        paths = []
        inplace = self.inplace
        try:
            for self.inplace in sorted({False, bool(self.requested_inplace)}):
                paths += [self.get_ext_fullpath(name) for name in EXTENSION_NAMES]
        finally:
            self.inplace = inplace
        return paths

    def remove_outputs(self) -> None:
        for path in self.output_paths():
            if os.path.exists(path):
                os.remove(path)


setup(distclass=HaplyDistribution, cmdclass={"build_ext": BuildMypyc})
