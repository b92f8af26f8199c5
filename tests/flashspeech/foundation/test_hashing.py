"""One fingerprint for JSON-able values; file hashes that treat a split file as the whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flashspeech.foundation.hashing import cached_sha256, canonical_json, fingerprint, sha256_file, sha256_files


def test_fingerprint_is_canonical():
    a = {"b": [1, 2.5, None], "a": {"y": "é", "x": Path("/tmp/x")}}
    b = {"a": {"x": Path("/tmp/x"), "y": "é"}, "b": [1, 2.5, None]}
    assert canonical_json(a) == '{"a":{"x":"/tmp/x","y":"é"},"b":[1,2.5,null]}'
    assert fingerprint(a) == fingerprint(b) == hashlib.sha256(canonical_json(a).encode()).hexdigest()
    assert fingerprint(a, 16) == fingerprint(a)[:16]
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_file_hashes(tmp_path):
    whole, one, two = tmp_path / "whole", tmp_path / "1", tmp_path / "2"
    whole.write_bytes(b"abcdef")
    one.write_bytes(b"abc")
    two.write_bytes(b"def")
    assert sha256_file(whole) == hashlib.sha256(b"abcdef").hexdigest() == sha256_files([one, two])
    assert cached_sha256(whole) == sha256_file(whole)
    whole.write_bytes(b"changed!")  # another size: hashed again
    assert cached_sha256(whole) == hashlib.sha256(b"changed!").hexdigest()
