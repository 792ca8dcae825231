"""FrameDecoder: any split of a stream of size-prefixed frames yields exactly those frames.

Frames range from empty to several times the 64 KiB staging buffer, so both the staging path
and the direct-into-its-own-bytearray path are crossed, at every kind of chunk boundary.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol.framing import STAGING_BYTES, FrameDecoder, FramingError

MAX_FRAME = 256 * 1024


def encode(frames: list[bytes]) -> bytes:
    return b"".join(struct.pack(">i", len(f)) + f for f in frames)


def frame_of(size: int, seed: int) -> bytes:
    """A frame whose bytes depend on its size and seed, so a misplaced byte is noticed."""
    pattern = bytes((seed + i) % 251 for i in range(251))
    return (pattern * (size // 251 + 1))[:size]


def drain(decoder: FrameDecoder) -> list[bytes]:
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(bytes(frame))
    return out


def feed_in_chunks(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    received: list[bytes] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        decoder.feed(data[previous:cut])
        received += drain(decoder)
        previous = cut
    return received


def receive_like_a_socket(decoder: FrameDecoder, data: bytes, reads: list[int]) -> list[bytes]:
    """get_buffer/buffer_updated, writing at most `reads[i]` bytes per call, as asyncio does."""
    received: list[bytes] = []
    position = 0
    index = 0
    while position < len(data):
        target = decoder.get_buffer(-1)
        assert len(target) > 0, "get_buffer returned an empty buffer with data pending"
        limit = reads[index % len(reads)] if reads else len(target)
        index += 1
        count = min(len(target), limit, len(data) - position)
        target[:count] = data[position : position + count]
        position += count
        decoder.buffer_updated(count)
        received += drain(decoder)
    return received


sizes = st.one_of(
    st.integers(0, 64),
    st.integers(0, 200_000),
    st.sampled_from(
        [
            STAGING_BYTES - 5,
            STAGING_BYTES - 4,
            STAGING_BYTES - 3,
            STAGING_BYTES,
            STAGING_BYTES + 1,
            2 * STAGING_BYTES,
            200_000,
        ]
    ),
)
frame_lists = st.lists(sizes, max_size=8).map(
    lambda sizes: [frame_of(size, i) for i, size in enumerate(sizes)]
)


@settings(max_examples=60, deadline=None)
@given(frames=frame_lists, data=st.data())
def test_random_splits_yield_the_frames_in_order(frames: list[bytes], data: st.DataObject) -> None:
    stream = encode(frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts")
    assert feed_in_chunks(FrameDecoder(MAX_FRAME), stream, cuts) == frames


@settings(max_examples=60, deadline=None)
@given(frames=frame_lists, reads=st.lists(st.integers(1, 100_000), max_size=6))
def test_socket_style_reads_yield_the_frames_in_order(
    frames: list[bytes], reads: list[int]
) -> None:
    stream = encode(frames)
    assert receive_like_a_socket(FrameDecoder(MAX_FRAME), stream, reads) == frames


@settings(max_examples=100, deadline=None)
@given(frames=st.lists(st.binary(max_size=40), max_size=6))
def test_byte_at_a_time(frames: list[bytes]) -> None:
    stream = encode(frames)
    decoder = FrameDecoder(MAX_FRAME)
    received: list[bytes] = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        received += drain(decoder)
    assert received == frames


@settings(max_examples=100, deadline=None)
@given(frames=st.lists(st.binary(max_size=40), max_size=6), staging=st.integers(4, 64))
def test_tiny_staging_buffer_byte_at_a_time(frames: list[bytes], staging: int) -> None:
    """A staging buffer smaller than most frames exercises compaction and the big-frame path."""
    stream = encode(frames)
    decoder = FrameDecoder(MAX_FRAME, staging_bytes=staging)
    assert receive_like_a_socket(decoder, stream, [1]) == frames


@settings(max_examples=100, deadline=None)
@given(
    frames=st.lists(st.binary(max_size=200), max_size=10),
    staging=st.integers(4, 300),
    reads=st.lists(st.integers(1, 500), min_size=1, max_size=5),
)
def test_small_staging_buffer_random_reads(
    frames: list[bytes], staging: int, reads: list[int]
) -> None:
    stream = encode(frames)
    decoder = FrameDecoder(MAX_FRAME, staging_bytes=staging)
    assert receive_like_a_socket(decoder, stream, reads) == frames


@pytest.mark.parametrize("size", [-1, -(2**31), MAX_FRAME + 1, 2**31 - 1])
def test_bad_size_raises_before_allocation(size: int) -> None:
    decoder = FrameDecoder(MAX_FRAME)
    with pytest.raises(FramingError, match=str(size)):
        decoder.feed(struct.pack(">i", size))
    assert decoder._frame is None  # nothing of that size was allocated
    assert decoder.next_frame() is None


@settings(max_examples=50, deadline=None)
@given(
    good=st.lists(st.binary(max_size=30), max_size=4),
    bad=st.one_of(st.integers(-(2**31), -1), st.integers(MAX_FRAME + 1, 2**31 - 1)),
)
def test_bad_size_after_good_frames(good: list[bytes], bad: int) -> None:
    """Frames before the bad size are delivered; the bad size itself raises."""
    decoder = FrameDecoder(MAX_FRAME)
    with pytest.raises(FramingError):
        decoder.feed(encode(good) + struct.pack(">i", bad) + b"x" * 10)
    assert drain(decoder) == good
    assert decoder._frame is None


def test_size_equal_to_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(1000)
    payload = frame_of(1000, 3)
    decoder.feed(encode([payload]))
    assert drain(decoder) == [payload]


@pytest.mark.parametrize(
    "size", [STAGING_BYTES - 8, STAGING_BYTES - 4, STAGING_BYTES - 3, STAGING_BYTES]
)
@pytest.mark.parametrize("offset", [0, 1, 3, 4, 5, 1000])
def test_staging_boundaries(size: int, offset: int) -> None:
    """A first frame of `offset` bytes shifts the second frame across the staging end."""
    first = frame_of(offset, 1)
    second = frame_of(size, 2)
    third = frame_of(7, 3)
    stream = encode([first, second, third])
    for reads in ([len(stream)], [4096], [1, 3, 65536], [STAGING_BYTES - 1]):
        decoder = FrameDecoder(MAX_FRAME)
        assert receive_like_a_socket(decoder, stream, reads) == [first, second, third]


def test_frame_larger_than_staging_is_received_into_its_own_buffer() -> None:
    payload = frame_of(STAGING_BYTES * 3, 9)
    decoder = FrameDecoder(MAX_FRAME)
    decoder.feed(encode([payload])[:100])
    view = decoder.get_buffer()
    # the rest of the frame goes straight into the frame's own bytearray
    assert len(view) == len(payload) - 96
    view[:] = payload[96:]
    decoder.buffer_updated(len(view))
    assert drain(decoder) == [payload]
    # and the decoder is back on its staging buffer afterwards
    assert len(decoder.get_buffer()) == STAGING_BYTES


def test_partial_frame_waits() -> None:
    decoder = FrameDecoder(MAX_FRAME)
    decoder.feed(encode([b"hello"])[:-1])
    assert decoder.next_frame() is None
    decoder.feed(b"o")
    assert drain(decoder) == [b"hello"]
