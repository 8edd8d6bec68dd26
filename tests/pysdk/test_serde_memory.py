"""pysdk/_serde.py: an encoded value holds its own size, not the encoder's buffer."""
from __future__ import annotations

import tracemalloc

from pysdk._serde import json_dumps


def test_small_encoded_values_do_not_hold_the_encoders_buffer() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [json_dumps({"total": i}) for i in range(2000)]
        per_value = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert kept[7] == b'{"total":7}'
    assert per_value < 200, f"{per_value:.0f} bytes per small encoded value"
