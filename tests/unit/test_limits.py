"""haply.limits: the descriptors a configuration needs and the RLIMIT_NOFILE plan."""

import resource
import textwrap

import pytest
from hypothesis import given, strategies as st

from haply.config import load
from haply.limits import (DEFAULT_STATS_MAXCONN, RESERVED_DESCRIPTORS, LimitError,
                          configured_ulimit, descriptors_needed, effective_maxconn,
                          ensure_nofile, plan_nofile)

INFINITY = resource.RLIM_INFINITY


def config_of(tmp_path, text):
    path = tmp_path / "haproxy.cfg"
    path.write_text(textwrap.dedent(text))
    return load([str(path)], {}).config


def make(tmp_path, global_lines="maxconn 1000", listen_extra="", server_extra=""):
    return config_of(tmp_path, f"""\
        global
            {global_lines}
        defaults
            mode tcp
            timeout connect 1s
            timeout client 1s
            timeout server 1s
        listen a
            bind 127.0.0.1:18001
            {listen_extra}
            server s1 127.0.0.1:18002 {server_extra}
        """)


def test_count_follows_the_documented_formula(tmp_path):
    config = config_of(tmp_path, """\
        global
            maxconn 1000
            stats socket /tmp/haply-limits.sock level admin
            stats maxconn 4
            log 127.0.0.1:514 local0
            log stdout local0
        defaults
            mode tcp
            timeout connect 1s
            timeout client 1s
            timeout server 1s
        listen a
            bind 127.0.0.1:18001,127.0.0.1:18003
            log /dev/log local1
            server s1 127.0.0.1:18002 check
            server s2 127.0.0.1:18004 check agent-check agent-port 9
            server s3 127.0.0.1:18005
        """)
    need = descriptors_needed(config)
    assert need.maxconn == 1000
    assert need.connections == 2000
    assert need.listeners == 2 + 1  # two binds and the stats socket
    assert need.checks == 3  # s1 check, s2 check and agent
    assert need.logs == 2  # 127.0.0.1:514 and /dev/log; stdout opens nothing
    assert need.other == 4 + RESERVED_DESCRIPTORS
    assert need.total == 2000 + 3 + 3 + 2 + 4 + RESERVED_DESCRIPTORS
    assert "maxconn 1000" in need.explain()


def test_workers_multiply_the_listeners(tmp_path):
    """In master-worker mode each bind has one socket per worker, all held by
    the master, which also keeps a channel and a pidfd per worker."""
    one = descriptors_needed(make(tmp_path, "maxconn 1000"))
    four = descriptors_needed(make(tmp_path, "maxconn 1000\n    nbthread 4"))
    assert four.listeners == 4 * one.listeners
    assert four.connections == one.connections  # maxconn is shared out, not multiplied
    assert four.other == one.other + 4 * 3


def test_default_stats_maxconn_is_haproxys(tmp_path):
    config = make(tmp_path, "maxconn 10\n    stats socket /tmp/haply-limits.sock")
    assert descriptors_needed(config).other == DEFAULT_STATS_MAXCONN + RESERVED_DESCRIPTORS


def test_maxconn_from_frontends_when_global_is_unset(tmp_path):
    config = config_of(tmp_path, """\
        defaults
            mode tcp
            timeout connect 1s
            timeout client 1s
            timeout server 1s
        frontend f1
            bind 127.0.0.1:18001
            maxconn 300
            default_backend b
        frontend f2
            bind 127.0.0.1:18003
            maxconn 200
            default_backend b
        backend b
            server s1 127.0.0.1:18002
        """)
    assert effective_maxconn(config) == 500


def test_no_maxconn_anywhere_is_unbounded(tmp_path):
    config = make(tmp_path, "daemon")
    assert effective_maxconn(config) is None
    plan = plan_nofile(config, 1024, 4096, root=False)
    assert plan.limits == (4096, 4096)  # take what the hard limit allows
    assert "no maxconn" in plan.warning and "2032" in plan.warning
    plan = plan_nofile(config, 4096, 4096, root=False)
    assert plan.limits is None and plan.warning


def test_enough_already_changes_nothing(tmp_path):
    config = make(tmp_path)
    need = descriptors_needed(config).total
    assert plan_nofile(config, need, need, root=False).limits is None
    assert plan_nofile(config, 1 << 20, INFINITY, root=True).limits is None  # never lowered


def test_soft_raised_within_hard(tmp_path):
    config = make(tmp_path)
    need = descriptors_needed(config).total
    assert plan_nofile(config, 1024, 65536, root=False).limits == (need, 65536)
    assert plan_nofile(config, 1024, INFINITY, root=False).limits == (need, INFINITY)


def test_hard_raised_by_root(tmp_path):
    config = make(tmp_path, "maxconn 100000")
    need = descriptors_needed(config).total
    assert need > 200000
    assert plan_nofile(config, 1024, 4096, root=True).limits == (need, need)


def test_error_without_root_says_how_many_and_how(tmp_path):
    config = make(tmp_path, "maxconn 100000")
    need = descriptors_needed(config).total
    with pytest.raises(LimitError) as error:
        plan_nofile(config, 1024, 4096, root=False)
    message = str(error.value)
    assert f"{need} open files are needed" in message
    assert "hard limit is 4096" in message
    assert f"ulimit -n {need}" in message and f"LimitNOFILE={need}" in message


def test_kernel_ceiling_is_named(tmp_path):
    config = make(tmp_path, "maxconn 1000000")
    with pytest.raises(LimitError, match=r"fs\.nr_open"):
        plan_nofile(config, 1024, INFINITY, root=True, nr_open=1048576)


def test_explicit_ulimit_n_wins_and_warns_when_too_low(tmp_path):
    config = make(tmp_path, "maxconn 1000\n    ulimit-n 500")
    assert configured_ulimit(config) == 500
    plan = plan_nofile(config, 20000, 20000, root=False)
    assert plan.limits == (500, 20000)
    assert "ulimit-n 500 is lower than" in plan.warning
    plan = plan_nofile(make(tmp_path, "maxconn 10\n    ulimit-n 50000"), 1024, 4096, root=True)
    assert plan.limits == (50000, 50000) and plan.warning is None


@pytest.mark.parametrize("value", ["0", "many", "-5"])
def test_invalid_ulimit_n(tmp_path, value):
    config = make(tmp_path, f"maxconn 10\n    ulimit-n {value}")
    with pytest.raises(LimitError, match="ulimit-n"):
        configured_ulimit(config)


@given(soft=st.integers(1, 1 << 21), hard=st.one_of(st.just(INFINITY), st.integers(1, 1 << 21)),
       root=st.booleans(), maxconn=st.integers(1, 1 << 19))
def test_plan_properties(tmp_path_factory, soft, hard, root, maxconn):
    if hard != INFINITY and soft > hard:
        soft = hard
    config = make(tmp_path_factory.mktemp("cfg"), f"maxconn {maxconn}")
    need = descriptors_needed(config).total
    try:
        plan = plan_nofile(config, soft, hard, root)
    except LimitError as exc:
        # Only when the hard limit is below the need and nobody may raise it.
        assert not root and hard != INFINITY and hard < need
        assert str(need) in str(exc)
        return
    new_soft, new_hard = plan.limits or (soft, hard)
    assert new_soft >= need  # enough descriptors
    assert new_soft >= soft  # never lowered without ulimit-n
    assert new_hard == INFINITY or new_soft <= new_hard
    if not root:
        assert new_hard == hard


def test_ensure_nofile_sets_the_real_limit(tmp_path):
    """Runs the I/O part against this process's own limits, restored after."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    config = make(tmp_path, "maxconn 1000")
    if before[1] != INFINITY and before[1] < descriptors_needed(config).total:
        pytest.skip(f"hard open-file limit {before[1]} is below what this test raises to")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, before[1]))
        assert ensure_nofile(config) is None
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert soft == descriptors_needed(config).total
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
