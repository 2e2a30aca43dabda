"""bench/run.py: reading wrk's report and writing the table.

The harness is not a test, but a broken parser would make every figure it prints
wrong. tests/interop/test_bench_configs.py checks the configs it generates.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = load_bench()

WRK_REPORT = """\
Running 1s test @ http://127.0.0.1:53771/small.txt
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.75ms    0.99ms   9.10ms   71.10%
    Req/Sec    15.45k     1.81k   16.76k    80.00%
  15378 requests in 1.00s, 4.66MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  15334.39
Transfer/sec:      4.65MB
"""


def test_parse_wrk_reads_counts_rate_and_errors():
    run = bench.Run(proxy="haproxy", round=1)
    assert bench.parse_wrk(WRK_REPORT, run)
    assert run.requests == 15378
    assert run.seconds == pytest.approx(1.0)
    assert run.rps == pytest.approx(15378.0)
    assert run.mbytes_per_s == pytest.approx(4.65 * 1024 * 1024 / 1e6)
    assert run.errors == 6
    assert run.non_2xx == 7


def test_parse_wrk_converts_duration_units():
    run = bench.Run(proxy="haply", round=1)
    assert bench.parse_wrk("  120 requests in 500.00ms, 1.20GB read\n", run)
    assert run.rps == pytest.approx(240.0)
    assert run.errors == 0


def test_parse_wrk_refuses_a_report_without_requests():
    run = bench.Run(proxy="haply", round=1)
    assert not bench.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n", run)


def test_markdown_reports_ratio_and_cpu():
    result = bench.Result("l7_keepalive", [
        bench.Run("haproxy", 1, rps=1000.0, cpu_us_per_req=20.0),
        bench.Run("haply", 1, rps=250.0, cpu_us_per_req=80.0),
    ])
    table = bench.markdown([result], bench.PROXIES)
    assert "| l7_keepalive | 1,000 | 250 | 0.25 | 20.0 | 80.0 | 0 / 0 |" in table
