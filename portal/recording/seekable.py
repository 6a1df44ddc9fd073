"""A finished track is remuxed once so that players can seek in it.

While recording, the muxer writes to an append-only stream: a WebM without a duration or an
index (Cues), which browsers play but cannot seek in. When the track is complete it is remuxed
(codec copy) into a seekable container. The muxer then needs to seek back to fill in the
header, so it writes into an encrypted scratch file first (random access, a throwaway key held
in memory), which is copied into a new encrypted track file. Plaintext never reaches the disk.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal.recording.store import ChunkReader, ChunkWriter, FileSummary

BLOCK = 64 * 1024
_NONCE, _TAG = 12, 16
_SLOT = _NONCE + BLOCK + _TAG


class _Positioned(io.RawIOBase):
    """A readable, seekable file with a position and a size (`_end()`)."""

    _pos = 0

    def _end(self) -> int:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end()}[whence]
        self._pos = max(0, base + offset)
        return self._pos


class EncryptedScratch(_Positioned):
    """A seekable read/write file whose blocks are sealed with a key that exists only here.

    Each 64 KiB block sits in a fixed slot as nonce ‖ AES-GCM(block); a rewrite gets a fresh
    nonce. Lost with the process, by design: it is scratch space.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "r+b")
        self._path, self._pos, self._size = path, 0, 0

    def writable(self) -> bool:
        return True

    def _end(self) -> int:
        return self._size

    def _load(self, index: int) -> bytearray:
        if index * BLOCK >= self._size:
            return bytearray()
        self._file.seek(index * _SLOT)
        slot = self._file.read(_SLOT)
        block = self._aead.decrypt(slot[:_NONCE], slot[_NONCE:], index.to_bytes(8, "big"))
        return bytearray(block)

    def _store(self, index: int, block: bytes) -> None:
        nonce = os.urandom(_NONCE)
        self._file.seek(index * _SLOT)
        self._file.write(nonce + self._aead.encrypt(nonce, block, index.to_bytes(8, "big")))

    def write(self, data: Any) -> int:
        if self._pos > self._size:  # a hole: zeros, so that every block before is whole
            target, self._pos = self._pos, self._size
            while self._pos < target:
                self.write(bytes(min(BLOCK, target - self._pos)))
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            index, offset = divmod(self._pos, BLOCK)
            block = self._load(index)
            if len(block) < offset:
                block.extend(bytes(offset - len(block)))
            take = min(BLOCK - offset, len(view) - done)
            block[offset:offset + take] = view[done:done + take]
            self._store(index, bytes(block))
            self._pos += take
            done += take
            self._size = max(self._size, self._pos)
        return done

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out) and self._pos < self._size:
            index, offset = divmod(self._pos, BLOCK)
            block = self._load(index)
            take = min(len(block) - offset, len(out) - done, self._size - self._pos)
            out[done:done + take] = block[offset:offset + take]
            self._pos += take
            done += take
        return done

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            self._path.unlink(missing_ok=True)
        super().close()


class PlainStream(_Positioned):
    """A track's decrypted media as a seekable read-only file (for PyAV and HTTP ranges);
    decrypted chunk by chunk in memory. Closing it closes the reader."""

    def __init__(self, source: ChunkReader) -> None:
        super().__init__()
        self._source, self._pos = source, 0

    def _end(self) -> int:
        return self._source.size

    def readinto(self, buffer: Any) -> int:
        end = min(self._source.size, self._pos + len(buffer))
        if end <= self._pos:
            return 0
        data = b"".join(self._source.read_range(self._pos, end))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


def make_seekable(path: Path, *, recording_id: str, track: str, data_key: bytes) -> FileSummary:
    """Replace a complete track file by a seekable remux of it (atomically)."""
    import av

    scratch_path = path.with_name(f".{path.name}.scratch")
    final_path = path.with_name(f".{path.name}.final")
    for stale in (scratch_path, final_path):
        stale.unlink(missing_ok=True)
    with ChunkReader(path, recording_id=recording_id, data_key=data_key) as source, \
            EncryptedScratch(scratch_path) as scratch:
        plain = PlainStream(source)
        with av.open(plain, "r") as given:
            streams = [s for s in given.streams if s.type in ("audio", "video")]
            container = "webm" if all(s.codec_context.name in ("vp8", "vp9", "opus")
                                      for s in streams) else "matroska"
            with av.open(scratch, "w", format=container) as out:
                copies = {s.index: out.add_stream_from_template(s) for s in streams}
                for packet in given.demux(*streams):
                    if packet.dts is None:
                        continue
                    packet.stream = copies[packet.stream.index]
                    out.mux(packet)
        plain.close()
        scratch.seek(0)
        writer = ChunkWriter(final_path, recording_id=recording_id, track=track,
                             data_key=data_key)
        try:
            while chunk := scratch.read(BLOCK):
                writer.write(chunk)
            summary = writer.close()
        except BaseException:
            writer.close()
            final_path.unlink(missing_ok=True)
            raise
    os.replace(final_path, path)
    return summary
