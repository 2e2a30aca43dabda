"""bench/run.py generates one haproxy.cfg per scenario and runs both proxies on it:
each must be valid for HAProxy 2.6 and for haply, or the comparison is void."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAPROXY = "/usr/sbin/haproxy"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = load_bench()


@pytest.mark.parametrize("name", sorted(bench.SCENARIOS))
@pytest.mark.parametrize("command", [
    pytest.param([HAPROXY, "-c", "-f"], marks=pytest.mark.oracle, id="haproxy"),
    pytest.param([sys.executable, "-m", "haply", "-c", "-f"], id="haply"),
])
def test_scenario_config_is_valid(tmp_path, name, command):
    config = tmp_path / f"{name}.cfg"
    config.write_text(bench.proxy_config(bench.SCENARIOS[name], 18080, [19001, 19002]))
    result = subprocess.run(command + [str(config)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
