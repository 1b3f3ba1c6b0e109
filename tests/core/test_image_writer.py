"""The background image writer: same bytes as writing inline, in order; the first error stops later
writes and is raised in the caller."""

from __future__ import annotations

import pytest
from PIL import Image

from t2ibench.errors import UserError
from t2ibench.fileio import sha256_bytes
from t2ibench.image_writer import ImageWriter
from t2ibench.runner import png_bytes
from t2ibench.store import RunDir


def _images(n):
    return [Image.new("RGB", (8, 8), (10 * i, 20, 30)) for i in range(n)]


def test_writes_the_same_bytes_as_inline(tmp_path):
    run = RunDir(tmp_path / "run")
    writer = ImageWriter(run, png_bytes, max_pending=2)
    for i, im in enumerate(_images(5)):
        writer.submit(f"m/s/p-{i}", im, {"i": i})
    writer.close()
    for i, im in enumerate(_images(5)):
        assert run.png_path(f"m/s/p-{i}").read_bytes() == png_bytes(im)
        assert run.read_meta(f"m/s/p-{i}")["image_sha256"] == sha256_bytes(png_bytes(im))


def test_first_error_stops_later_writes_and_is_raised(tmp_path):
    run = RunDir(tmp_path / "run")
    calls = []

    def encode(image):
        calls.append(image)
        if len(calls) == 2:
            raise UserError("cannot write: disk full")
        return png_bytes(image)

    writer = ImageWriter(run, encode)
    for i, im in enumerate(_images(4)):
        writer.submit(f"m/s/p-{i}", im, {})
    with pytest.raises(UserError, match="disk full"):
        writer.close()
    assert run.read_meta("m/s/p-0") is not None
    assert [run.read_meta(f"m/s/p-{i}") for i in (1, 2, 3)] == [None] * 3
    assert len(calls) == 2
