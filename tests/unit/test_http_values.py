"""Comma-separated header values (haply.http.values), as HAProxy 2.6 reads
them in hdr() and req.hdr() (compared end to end in
tests/interop/test_rewrite_oracle.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from haply.http.values import comma_values


def test_values_split_at_commas_outside_quotes():
    assert comma_values(["a, b", "c"]) == ["a", "b", "c"]
    assert comma_values(["b ,a", "\tx\t"]) == ["b", "a", "x"]
    assert comma_values(['"x, y", b']) == ['"x, y"', "b"]
    assert comma_values(['"q\\", r", s']) == ['"q\\", r"', "s"]  # an escaped quote does not close
    assert comma_values(["a,,b"]) == ["a", "", "b"]
    assert comma_values([]) == []


plain = st.text(st.characters(blacklist_characters=',"\\', blacklist_categories=("Cs",)), min_size=1) \
    .map(lambda text: text.strip(" \t")).filter(bool)


@given(st.lists(plain, min_size=1, max_size=6), st.lists(plain, max_size=3))
def test_a_list_written_with_commas_reads_back(values, quoted):
    written = [", ".join(values), ", ".join(f'"{q}, {q}"' for q in quoted)] if quoted else [", ".join(values)]
    assert comma_values(written) == values + [f'"{q}, {q}"' for q in quoted]
