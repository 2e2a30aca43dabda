"""Suite-wide settings.

Property tests draw new examples on every run on a developer's machine, which is
how they keep finding cases. A CI run (CI set in the environment) draws the same
examples every time instead (hypothesis' `derandomize`), so that a run's result
depends on the change it tests and not on the draw; a case found while
developing is pinned as an `@example` or a plain test.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
