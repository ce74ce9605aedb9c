"""The oracle of incremental decoding, written from the documented promise (not from mgf's code)."""


def expected_events(notes):
    """The events ``docs/contract.md`` promises for ``to_notes``' ``[(pitch, velocity, start, end)]``: a note-on and a
    note-off (velocity 0) per note, sorted by time, then note-off before note-on."""
    events = []
    for pitch, velocity, start, end in notes:
        events += [(start, "note_on", pitch, velocity), (end, "note_off", pitch, 0)]
    return sorted(events)


def decode(decoder, tokens):
    """Every event of ``tokens`` fed one by one to ``decoder``, then of its ``close()``."""
    events = []
    for token in tokens:
        events += decoder.feed(token)
    return events + decoder.close()
