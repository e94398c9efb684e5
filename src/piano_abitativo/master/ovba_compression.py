"""The compression of [MS-OVBA] §2.4.1, used for the ``dir`` stream and the module sources.

:func:`compress` is deterministic (the same input always gives the same bytes) and greedy
over at most ``_MAX_CHAIN`` earlier candidates per position; :func:`decompress` reads any
valid container, including Excel's.
"""

from __future__ import annotations

import struct

_CHUNK = 4096
_MAX_CHAIN = 64  # candidates tried per position; any match is valid, longer is better


def _copy_token_bits(difference: int) -> int:
    """§2.4.1.3.19.3 CopyToken Help: bits of the offset for this chunk position."""
    return max((difference - 1).bit_length(), 4)


def _match_length(data: bytes, candidate: int, pos: int, limit: int) -> int:
    """Length of the common prefix of data[candidate:] and data[pos:], at most limit.

    The regions may overlap (a copy token copies byte by byte), which is fine because
    the decompressed output equals ``data``."""
    if data[candidate : candidate + limit] == data[pos : pos + limit]:
        return limit
    low, high = 0, limit  # equal prefix of `low` bytes, not of `high`
    while high - low > 1:
        mid = (low + high) // 2
        if data[candidate : candidate + mid] == data[pos : pos + mid]:
            low = mid
        else:
            high = mid
    return low


def _compress_tokens(data: bytes, start: int, end: int) -> tuple[bytes, int]:
    """Token sequences for ``data[start:end]`` within one chunk (§2.4.1.3.7-9).

    Returns the chunk body (at most 4096 bytes) and the position reached, which is
    ``end`` unless the tokens did not fit."""
    out = bytearray()
    heads: dict[bytes, list[int]] = {}
    pos = indexed = start
    while pos < end and len(out) < _CHUNK:
        flag_at = len(out)
        out.append(0)
        flags = 0
        written = 0
        for bit in range(8):
            if pos >= end or len(out) >= _CHUNK:
                break
            while indexed < pos:
                if indexed + 3 <= end:
                    heads.setdefault(data[indexed : indexed + 3], []).append(indexed)
                indexed += 1
            best_len = best_candidate = 0
            bits = _copy_token_bits(pos - start)
            if pos + 3 <= end:
                candidates = heads.get(data[pos : pos + 3])
                if candidates:
                    limit = min((0xFFFF >> bits) + 3, end - pos)
                    for candidate in reversed(candidates[-_MAX_CHAIN:]):
                        length = _match_length(data, candidate, pos, limit)
                        if length > best_len:
                            best_len, best_candidate = length, candidate
                            if length == limit:
                                break
            if best_len >= 3:
                if len(out) + 2 > _CHUNK:
                    break
                token = ((pos - best_candidate - 1) << (16 - bits)) | (best_len - 3)
                out += struct.pack("<H", token)
                flags |= 1 << bit
                pos += best_len
            else:
                out.append(data[pos])
                pos += 1
            written += 1
        if written:
            out[flag_at] = flags
        else:
            del out[flag_at:]
            break
    return bytes(out), pos


def _chunk_header(size: int, compressed: bool) -> bytes:
    """CompressedChunkHeader (§2.4.1.1.5): size - 3, signature 0b011, flag."""
    return struct.pack("<H", (size - 3) | (0b011 << 12) | (0x8000 if compressed else 0))


def compress(data: bytes) -> bytes:
    """Compress ``data`` into a CompressedContainer ([MS-OVBA] §2.4.1).

    Each 4096-byte chunk is compressed, or stored raw when that would not fit in 4096
    bytes.  A raw chunk always decompresses to 4096 bytes, so a shorter final chunk
    that does not fit compressed (only for ~3.6 KB or more of incompressible bytes,
    never for source text) is split into two compressed chunks instead, which the
    decompression algorithm of §2.4.1.3.1 reads back exactly.
    """
    data = bytes(data)
    out = bytearray(b"\x01")
    start = 0
    while start < len(data):
        end = min(start + _CHUNK, len(data))
        body, reached = _compress_tokens(data, start, end)
        if reached < end and end - start == _CHUNK:
            out += _chunk_header(_CHUNK + 2, compressed=False) + data[start:end]
            start = end
        else:
            out += _chunk_header(len(body) + 2, compressed=True) + body
            start = reached
    return bytes(out)


def decompress(data: bytes) -> bytes:
    """Decompress a CompressedContainer ([MS-OVBA] §2.4.1.3.1); ValueError if malformed."""
    data = bytes(data)
    if not data or data[0] != 0x01:
        raise ValueError("not a compressed container: signature byte is not 0x01")
    out = bytearray()
    pos = 1
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError(f"truncated chunk header at offset {pos}")
        (header,) = struct.unpack_from("<H", data, pos)
        size = (header & 0x0FFF) + 3
        if (header >> 12) & 0b111 != 0b011:
            raise ValueError(f"bad chunk signature at offset {pos}")
        chunk_end = min(pos + size, len(data))
        pos += 2
        if not header & 0x8000:
            if size != _CHUNK + 2 or chunk_end - pos != _CHUNK:
                raise ValueError(f"raw chunk at offset {pos - 2} is not 4096 bytes")
            out += data[pos:chunk_end]
            pos = chunk_end
            continue
        chunk_start = len(out)
        while pos < chunk_end:
            flags = data[pos]
            pos += 1
            for bit in range(8):
                if pos >= chunk_end:
                    break
                if not flags & (1 << bit):
                    out.append(data[pos])
                    pos += 1
                    continue
                if pos + 2 > chunk_end:
                    raise ValueError(f"truncated copy token at offset {pos}")
                (token,) = struct.unpack_from("<H", data, pos)
                pos += 2
                bits = _copy_token_bits(len(out) - chunk_start)
                length = (token & (0xFFFF >> bits)) + 3
                offset = (token >> (16 - bits)) + 1
                source = len(out) - offset
                if source < chunk_start:
                    raise ValueError(f"copy token at offset {pos - 2} reaches before its chunk")
                for index in range(length):
                    out.append(out[source + index])
    return bytes(out)
