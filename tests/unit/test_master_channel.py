"""The master/worker line protocol, fed in arbitrary pieces."""

from hypothesis import given, strategies as st

from haply.master.channel import Channel, encode

messages = st.lists(st.dictionaries(st.text(max_size=8), st.one_of(
    st.integers(), st.text(max_size=20), st.none(), st.booleans(),
    st.lists(st.integers(), max_size=3))), max_size=5)


@given(messages, st.lists(st.integers(min_value=1, max_value=50), max_size=20))
def test_messages_survive_any_split(sent, cuts):
    data = b"".join(encode(message) for message in sent)
    received = []
    reader = Channel(received.append)
    position = 0
    for cut in cuts:
        reader.data_received(data[position:position + cut])
        position += cut
    reader.data_received(data[position:])
    assert received == sent


def test_garbage_lines_are_skipped_not_fatal():
    received = []
    reader = Channel(received.append)
    reader.data_received(b'not json\n{"t": "ready"}\n')
    assert received == [{"t": "ready"}]
