from haply.vrrp.show import format_table


def test_format_table():
    snaps = [
        {"name": "VI_1", "state": "MASTER", "priority": 150, "base_priority": 150, "master": "192.0.2.10",
         "last_transition": 1000.0, "reason": "no advertisement from a better master (none seen)"},
        {"name": "VI_2", "state": "BACKUP", "priority": 50, "base_priority": 150, "master": "192.0.2.11",
         "last_transition": 400.0, "reason": "higher priority 100 advertised by 192.0.2.11"},
        {"name": "VI_3", "state": "FAULT", "priority": 100, "base_priority": 100, "master": None,
         "last_transition": None, "reason": "fault: interface:eth1"},
    ]
    lines = format_table(snaps, now=1030.0).splitlines()
    assert lines[0].split() == ["instance", "state", "prio", "master", "since", "reason"]
    assert lines[1].split()[:5] == ["VI_1", "MASTER", "150", "self", "30s"]
    assert lines[2].split()[:5] == ["VI_2", "BACKUP", "50(150)", "192.0.2.11", "10m"]
    assert lines[3].split()[:5] == ["VI_3", "FAULT", "100", "-", "-"]
    assert lines[3].endswith("fault: interface:eth1")
