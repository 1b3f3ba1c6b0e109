"""Image encoding and writing off the generation loop: one background thread, in order.

The runner hands each finished image (a PIL image and its sidecar record) to ``ImageWriter``
and goes on denoising the next batch; the thread encodes the PNG and writes it with
``RunDir.write_image`` (atomic, PNG before sidecar). Bytes and order are those of writing
inline. The first error (e.g. a full disk, a ``UserError``) stops all later writes, so the run
directory holds exactly the images before it, and is raised again in the caller by the next
``submit`` or by ``close``. At most ``max_pending`` images wait in memory.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

from .store import RunDir

_DONE = object()


class ImageWriter:
    """``submit(key, image, meta)`` queues a write; ``close()`` waits for all and re-raises the first error."""

    def __init__(self, run: RunDir, encode: Callable[[Any], bytes], max_pending: int = 64) -> None:
        self.run = run
        self.encode = encode
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._reported = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="t2ibench-image-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # after a failure nothing more is written (as if the loop had stopped there)
            key, image, meta = item
            try:
                self.run.write_image(key, self.encode(image), meta)
            except BaseException as exc:  # surfaced in the caller's thread
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True  # raised once; later writes stay skipped
            raise self._error

    def submit(self, key: str, image: Any, meta: dict) -> None:
        """Queue one image (blocks while ``max_pending`` are waiting); raises an earlier write's error."""
        if self._closed:
            raise RuntimeError("ImageWriter is closed")
        self._raise_error()
        self._queue.put((key, image, meta))

    def close(self, raise_error: bool = True) -> None:
        """Write everything queued, stop the thread; raise the first write error (if ``raise_error``)."""
        if not self._closed:
            self._closed = True
            self._queue.put(_DONE)
            self._thread.join()
        if raise_error:
            self._raise_error()
