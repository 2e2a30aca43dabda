"""haply builds as pure Python; HAPLY_MYPYC=1 also compiles its request path.

The modules every HTTP request goes through (client session, server
connection, head rewriting, framing, balancing, timers) can be compiled with
mypyc into C extensions that sit beside the .py files and are imported in
their place: their classes become C structs and their calls to one another
direct C calls, which makes a keep-alive request about a quarter cheaper in
instructions (bench/RESULTS.md). Nothing changes without the variable: a
plain `pip install .` needs no compiler.

    HAPLY_MYPYC=1 pip install .      # pip fetches mypy for the build
    pip install mypy && HAPLY_MYPYC=1 python setup.py build_ext --inplace   # in a source tree
"""

import os
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent

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
]


def compiled_build() -> tuple[list, list[str]]:
    """(extension modules, build requirements) for HAPLY_MYPYC."""
    if os.environ.get("HAPLY_MYPYC", "0") in ("", "0"):
        return [], []
    try:
        from mypyc.build import mypycify
    except ImportError:
        # pip's isolated build runs this once to learn its requirements
        # (setup_requires), then again with them installed.
        print("HAPLY_MYPYC: mypy is not installed; building pure Python", file=sys.stderr)
        return [], ["mypy"]
    os.chdir(HERE)  # mypy reads the paths and its configuration from here
    return mypycify(["--config-file", "mypyc.ini", *COMPILED], group_name="haply",
                    opt_level="3"), ["mypy"]


extensions, requirements = compiled_build()
setup(ext_modules=extensions, setup_requires=requirements)
