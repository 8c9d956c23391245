"""bencode, for the torrent's info hash and opentracker's scrape answer in case (h)."""

import hashlib
from pathlib import Path


def bdecode(data, i=0):
    """Decodes one value at `i`; dict values are (value, start, end) so a span can be hashed."""
    c = data[i : i + 1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1 : j]), j + 1
    if c == b"l":
        i += 1
        out = []
        while data[i : i + 1] != b"e":
            v, i = bdecode(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        out = {}
        while data[i : i + 1] != b"e":
            k, i = bdecode(data, i)
            start = i
            v, i = bdecode(data, i)
            out[k] = (v, start, i)
        return out, i + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    return data[j + 1 : j + 1 + n], j + 1 + n


def info_hash(torrent):
    data = Path(torrent).read_bytes()
    top, _ = bdecode(data)
    _, start, end = top[b"info"]
    return hashlib.sha1(data[start:end]).digest()
