"""Encrypted, authenticated chunk stream: one file per recording track.

The STREAM construction (as in age and libsodium's secretstream): the plaintext is cut into
chunks of at most 64 KiB, each sealed with AES-256-GCM under nonce = prefix ‖ index and
associated data = header digest ‖ index ‖ final flag, so a reordered, dropped, duplicated or
truncated chunk fails authentication. Every chunk is fsync'd when sealed: a crash loses only the
plaintext still buffered in memory. The data key is never written to the file. The byte layout
is documented in docs/recording-format.md.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portal.recording.durable import PRIVATE_MODE, fsync_dir, write_all

MAGIC = b"SAMTREC\x00"
VERSION = 1
ALG_AES_256_GCM = 1
CHUNK_SIZE = 64 * 1024
TAG_BYTES = 16
NONCE_PREFIX_BYTES = 8
MAX_CIPHERTEXT = CHUNK_SIZE + TAG_BYTES
MAX_NAME_BYTES = 255
MAX_CHUNKS = 2**32
DATA_KEY_BYTES = 32
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_FIXED = len(MAGIC) + 2  # magic ‖ version ‖ algorithm
_MAX_HEADER = _FIXED + 2 * (2 + MAX_NAME_BYTES) + NONCE_PREFIX_BYTES
_KEY_INFO = b"SAMTREC v1 chunk key"


class StoreError(Exception):
    """A recording file cannot be written or read as asked."""


class TamperedError(StoreError):
    """The file is not what was written: altered bytes, bad header or framing, chunks reordered,
    dropped or duplicated, or a file of another recording."""


class WrongKeyError(TamperedError):
    """Nothing in the file authenticates: the data key is wrong, or the header or every chunk
    examined is damaged (AES-GCM cannot tell these apart)."""


class TruncatedError(StoreError):
    """The file ends before its final chunk (interrupted recording or truncated copy)."""


@dataclass(frozen=True)
class FileSummary:
    """What a manifest records about one track file."""

    track: str
    header_digest: str  # hex SHA-256 of the header bytes
    chunks: int
    chain_head: str  # hex head of the digest chain over every chunk's framed ciphertext
    plaintext_bytes: int
    complete: bool  # the final chunk is present

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileSummary:
        """Inverse of to_dict; ValueError if a field is missing or of the wrong type."""
        types: dict[str, type] = {
            "track": str, "header_digest": str, "chunks": int,
            "chain_head": str, "plaintext_bytes": int, "complete": bool,
        }
        values: dict[str, Any] = {}
        for name, kind in types.items():
            value = data.get(name)
            # bool is an int subclass: do not accept True as a chunk count.
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"file summary field {name!r} must be {kind.__name__}")
            values[name] = value
        return cls(**values)


# -- header and cipher ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    recording_id: str
    track: str
    nonce_prefix: bytes
    raw: bytes

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    @classmethod
    def new(cls, recording_id: str, track: str) -> _Header:
        rid, trk = _name_bytes(recording_id, "recording id"), _name_bytes(track, "track name")
        prefix = os.urandom(NONCE_PREFIX_BYTES)
        raw = (
            MAGIC + bytes([VERSION, ALG_AES_256_GCM])
            + _U16.pack(len(rid)) + rid + _U16.pack(len(trk)) + trk + prefix
        )
        return cls(recording_id, track, prefix, raw)

    @classmethod
    def parse(cls, buf: bytes) -> _Header:
        """Parse a header from the start of `buf` (which may hold more than the header)."""
        if len(buf) < len(MAGIC):
            if MAGIC.startswith(buf):
                raise TruncatedError("the file ends inside its header: no media was sealed")
            raise TamperedError("not a Samtale recording file (bad magic)")
        if buf[: len(MAGIC)] != MAGIC:
            raise TamperedError("not a Samtale recording file (bad magic)")
        pos = len(MAGIC)
        if len(buf) < _FIXED:
            raise TruncatedError("the file ends inside its header: no media was sealed")
        version, algorithm = buf[pos], buf[pos + 1]
        if version != VERSION:
            raise TamperedError(
                f"unsupported recording format version {version} (this server reads version "
                f"{VERSION}): written by a newer Samtale, or the header is damaged"
            )
        if algorithm != ALG_AES_256_GCM:
            raise TamperedError(f"unknown cipher id {algorithm} in the header: damaged header")
        pos = _FIXED
        names: list[str] = []
        for what in ("recording id", "track name"):
            if len(buf) < pos + 2:
                raise TruncatedError("the file ends inside its header: no media was sealed")
            (length,) = _U16.unpack_from(buf, pos)
            pos += 2
            if not 0 < length <= MAX_NAME_BYTES:
                raise TamperedError(f"damaged header: {what} length {length}")
            if len(buf) < pos + length:
                raise TruncatedError("the file ends inside its header: no media was sealed")
            try:
                names.append(buf[pos : pos + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise TamperedError(f"damaged header: {what} is not UTF-8") from None
            pos += length
        if len(buf) < pos + NONCE_PREFIX_BYTES:
            raise TruncatedError("the file ends inside its header: no media was sealed")
        prefix = buf[pos : pos + NONCE_PREFIX_BYTES]
        pos += NONCE_PREFIX_BYTES
        return cls(names[0], names[1], prefix, buf[:pos])


def _name_bytes(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if not 0 < len(raw) <= MAX_NAME_BYTES:
        raise ValueError(f"the {what} must be 1 to {MAX_NAME_BYTES} bytes of UTF-8")
    return raw


def _check_data_key(data_key: bytes) -> None:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError("a recording data key is 32 bytes")


class _Cipher:
    """Seals and opens chunks of one file."""

    def __init__(self, data_key: bytes, header: _Header) -> None:
        _check_data_key(data_key)
        # A per-file key (as age derives its payload key): even if two tracks of one recording
        # share a data key, and their random nonce prefixes collided, nonces never repeat
        # under one AES key.
        file_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=header.nonce_prefix, info=_KEY_INFO
        ).derive(data_key)
        self._aead = AESGCM(file_key)
        self._prefix = header.nonce_prefix
        self._digest = header.digest

    def _nonce_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        counter = _U32.pack(index)
        return self._prefix + counter, self._digest + counter + (b"\x01" if final else b"\x00")

    def seal(self, index: int, plaintext: bytes, final: bool) -> bytes:
        nonce, aad = self._nonce_aad(index, final)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, index: int, ciphertext: bytes, final: bool) -> bytes | None:
        """The plaintext, or None if the chunk does not authenticate as (index, final)."""
        nonce, aad = self._nonce_aad(index, final)
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None


def _chain_step(chain: bytes, ciphertext: bytes) -> bytes:
    framed = hashlib.sha256(_U32.pack(len(ciphertext)))
    framed.update(ciphertext)
    return hashlib.sha256(chain + framed.digest()).digest()


# -- writer ------------------------------------------------------------------------------------


def _open_private(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, PRIVATE_MODE)


class ChunkWriter:
    """Non-seekable, write-only binary file object that encrypts into a new track file.

    Plaintext is buffered in memory only; a chunk is sealed, written and fsync'd every
    `chunk_size` bytes and on `tick()` once the oldest buffered byte is `flush_interval` seconds
    old. `close()` seals the final chunk. If the process dies first, `recover()` makes the file
    readable up to the last sealed chunk. `write`, `tick` and `close` may block on fsync.
    """

    def __init__(
        self,
        path: Path,
        *,
        recording_id: str,
        track: str,
        data_key: bytes,
        flush_interval: float = 1.0,
        chunk_size: int = CHUNK_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_data_key(data_key)
        if not 0 < chunk_size <= CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {CHUNK_SIZE}")
        if flush_interval < 0:
            raise ValueError("flush_interval must not be negative")
        self._path = Path(path)
        header = _Header.new(recording_id, track)
        self._track = track
        self._cipher = _Cipher(data_key, header)
        self._header_digest = header.digest
        self._chunk_size = chunk_size
        self._flush_interval = flush_interval
        self._clock = clock
        self._buffer = bytearray()
        self._buffered_since: float | None = None
        self._index = 0
        self._chain = header.digest
        self._plaintext_bytes = 0
        self._summary: FileSummary | None = None
        self._failure: BaseException | None = None
        # write() comes from the muxer, tick() possibly from a timer on another thread.
        self._lock = threading.Lock()
        # "x": never overwrite an existing recording.
        self._file: BinaryIO = open(self._path, "xb", buffering=0, opener=_open_private)  # noqa: SIM115
        try:
            write_all(self._file.fileno(), header.raw)
            os.fsync(self._file.fileno())
            fsync_dir(self._path.parent)
        except BaseException:
            self._file.close()
            self._path.unlink(missing_ok=True)
            raise

    @property
    def path(self) -> Path:
        """The track file being written."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once close() was called (or the underlying file was closed after a failure)."""
        return self._file.closed

    def seekable(self) -> bool:
        """Always False: the muxer must write the container strictly sequentially."""
        return False

    def writable(self) -> bool:
        """Always True."""
        return True

    def readable(self) -> bool:
        """Always False."""
        return False

    def write(self, data: bytes) -> int:
        """Buffer plaintext; seal every full chunk at once. Returns len(data)."""
        chunk = bytes(data)
        with self._lock:
            self._check_usable()
            if chunk:
                self._buffer_and_seal(chunk)
        return len(chunk)

    def _buffer_and_seal(self, chunk: bytes) -> None:
        if not self._buffer:
            self._buffered_since = self._clock()
        self._buffer += chunk
        size = self._chunk_size
        while len(self._buffer) >= size:
            self._seal(bytes(self._buffer[:size]), final=False)
            del self._buffer[:size]
            # What remains came with this write (the older bytes filled the sealed chunk).
            self._buffered_since = self._clock() if self._buffer else None

    def tick(self) -> None:
        """Seal the buffer as a short chunk if its oldest byte waited `flush_interval` s."""
        with self._lock:
            if self.closed or self._failure is not None or not self._buffer:
                return
            assert self._buffered_since is not None
            if self._clock() - self._buffered_since >= self._flush_interval:
                self._seal(bytes(self._buffer), final=False)
                self._buffer.clear()
                self._buffered_since = None

    def flush(self) -> None:
        """No-op: sealing follows chunk size and time, not the muxer's frequent flushes."""

    def summary(self) -> FileSummary:
        """The state so far (complete=False until close())."""
        with self._lock:
            if self._summary is not None:
                return self._summary
            return self._make_summary(complete=False)

    def close(self) -> FileSummary:
        """Seal the remainder as the final chunk, fsync file and directory; idempotent."""
        with self._lock:
            return self._close()

    def _close(self) -> FileSummary:
        if self._summary is not None:
            return self._summary
        if self._failure is not None:
            self._file.close()
            raise StoreError(
                f"{self._path}: an earlier write failed ({self._failure}); the file ends at the "
                "last sealed chunk and needs recover()"
            )
        try:
            self._seal(bytes(self._buffer), final=True)
        finally:
            # Even if the final chunk cannot be written: do not leak the descriptor.
            self._buffer.clear()
            self._file.close()
        fsync_dir(self._path.parent)
        self._summary = self._make_summary(complete=True)
        return self._summary

    def _check_usable(self) -> None:
        if self.closed:
            raise ValueError("write to a closed recording file")
        if self._failure is not None:
            raise StoreError(f"{self._path}: an earlier write failed ({self._failure})")

    def _seal(self, plaintext: bytes, final: bool) -> None:
        if self._index >= MAX_CHUNKS:
            raise StoreError(f"{self._path}: more than 2^32 chunks in one file")
        ciphertext = self._cipher.seal(self._index, plaintext, final)
        try:
            write_all(self._file.fileno(), _U32.pack(len(ciphertext)) + ciphertext)
            os.fsync(self._file.fileno())
        except BaseException as exc:
            # A half-written chunk may be on disk: appending after it would corrupt the file.
            self._failure = exc
            raise
        self._chain = _chain_step(self._chain, ciphertext)
        self._index += 1
        self._plaintext_bytes += len(plaintext)

    def _make_summary(self, complete: bool) -> FileSummary:
        return FileSummary(
            track=self._track, header_digest=self._header_digest.hex(), chunks=self._index,
            chain_head=self._chain.hex(), plaintext_bytes=self._plaintext_bytes,
            complete=complete,
        )


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    offset: int  # of the ciphertext (after its length prefix)
    length: int  # of the ciphertext

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def plaintext_length(self) -> int:
        return self.length - TAG_BYTES


def _pread(fd: int, size: int, offset: int) -> bytes:
    parts: list[bytes] = []
    while size:
        block = os.pread(fd, size, offset)
        if not block:
            raise TruncatedError("the file became shorter while it was read")
        parts.append(block)
        size -= len(block)
        offset += len(block)
    return b"".join(parts)


def _read_header(fd: int, file_size: int, recording_id: str) -> _Header:
    header = _Header.parse(_pread(fd, min(file_size, _MAX_HEADER), 0))
    if header.recording_id != recording_id:
        raise TamperedError(
            f"this file belongs to recording {header.recording_id!r}, not {recording_id!r}"
        )
    return header


def _scan(fd: int, start: int, file_size: int, *, lenient: bool) -> tuple[list[_Frame], int]:
    """Index the chunks by their length prefixes; returns (frames, offset where they stop).

    Frames stop at end of file or at a trailing partial chunk. An impossible length prefix is
    tampering, unless `lenient` (recovery), where it marks the start of a torn write.
    """
    frames: list[_Frame] = []
    pos = start
    while pos < file_size:
        if file_size - pos < _U32.size:
            break
        (length,) = _U32.unpack(_pread(fd, _U32.size, pos))
        if not TAG_BYTES <= length <= MAX_CIPHERTEXT:
            if lenient:
                break
            raise TamperedError(
                f"damaged chunk framing at byte {pos}: length {length} is impossible"
            )
        if pos + _U32.size + length > file_size:
            break
        frames.append(_Frame(pos + _U32.size, length))
        pos += _U32.size + length
    return frames, pos


class ChunkReader:
    """Random access to the plaintext of a track file, authenticating every chunk it decrypts.

    Use as a context manager or call close(). Safe for several concurrent iterators (reads use
    pread, not a shared file position).
    """

    def __init__(
        self, path: Path, *, recording_id: str, data_key: bytes, allow_incomplete: bool = False
    ) -> None:
        _check_data_key(data_key)
        self._path = Path(path)
        self._allow_incomplete = allow_incomplete
        self._file: BinaryIO = open(self._path, "rb", buffering=0)  # noqa: SIM115
        try:
            fd = self._file.fileno()
            file_size = os.fstat(fd).st_size
            header = _read_header(fd, file_size, recording_id)
            self._track = header.track
            self._header_digest = header.digest
            self._cipher = _Cipher(data_key, header)
            self._frames, stop = _scan(fd, len(header.raw), file_size, lenient=False)
            if stop != file_size and not allow_incomplete:
                raise TruncatedError(
                    f"{self._path} ends inside chunk {len(self._frames)}: the recording was "
                    "interrupted or the file was truncated"
                )
            if not self._frames and not allow_incomplete:
                raise TruncatedError(
                    f"{self._path} holds no chunk: the recording was interrupted"
                )
        except BaseException:
            self._file.close()
            raise
        self._starts: list[int] = []
        total = 0
        for frame in self._frames:
            self._starts.append(total)
            total += frame.plaintext_length
        self._size = total
        self._cache: tuple[int, bytes] | None = None

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file."""
        self._file.close()

    @property
    def size(self) -> int:
        """Plaintext bytes in the (indexed) chunks."""
        return self._size

    @property
    def chunks(self) -> int:
        """Number of complete chunks in the file."""
        return len(self._frames)

    def read_range(self, start: int, end: int) -> Iterator[bytes]:
        """Plaintext bytes [start, end), decrypting only the chunks that hold them."""
        if not 0 <= start <= end <= self._size:
            raise ValueError(f"range {start}-{end} is outside 0-{self._size}")
        return self._range(start, end)

    def iter_plaintext(self) -> Iterator[bytes]:
        """The whole plaintext, chunk by chunk."""
        return self._range(0, self._size)

    def verify(self, expected: FileSummary | None = None) -> FileSummary:
        """Authenticate every chunk and recompute the digest chain.

        Strict readers require the final chunk (TruncatedError otherwise). With `expected` (the
        summary in the signed manifest), any difference raises TamperedError: this is what
        catches a dropped tail of an incomplete file.
        """
        chain = self._header_digest
        complete = False
        for index, frame in enumerate(self._frames):
            ciphertext = self._read_frame(frame)
            _, complete = self._open(index, ciphertext)
            chain = _chain_step(chain, ciphertext)
        summary = FileSummary(
            track=self._track, header_digest=self._header_digest.hex(), chunks=len(self._frames),
            chain_head=chain.hex(), plaintext_bytes=self._size, complete=complete,
        )
        if expected is not None and summary != expected:
            differing = [
                f.name for f in fields(summary)
                if getattr(summary, f.name) != getattr(expected, f.name)
            ]
            raise TamperedError(
                f"{self._path} does not match its signed manifest ({', '.join(differing)} "
                "differ): the file was altered, replaced or cut"
            )
        return summary

    def _range(self, start: int, end: int) -> Iterator[bytes]:
        # A read to the end also opens the chunks that hold no bytes there (the empty final
        # chunk of a file whose data filled its last chunk): else an altered final chunk, or
        # its final flag, would go unchecked.
        to_end = end == self._size
        if start == end and not to_end:
            return
        index = max(bisect.bisect_right(self._starts, start) - 1, 0)
        while index < len(self._frames) and (self._starts[index] < end or to_end):
            plaintext = self._chunk(index)
            base = self._starts[index]
            piece = plaintext[max(start - base, 0) : min(end - base, len(plaintext))]
            if piece:
                yield piece
            index += 1

    def _chunk(self, index: int) -> bytes:
        # Remember the last chunk: a player reading 32 KiB at a time would otherwise decrypt
        # each 64 KiB chunk twice. (Tuple assignment is atomic for concurrent iterators.)
        cached = self._cache
        if cached is not None and cached[0] == index:
            return cached[1]
        plaintext, _ = self._open(index, self._read_frame(self._frames[index]))
        self._cache = (index, plaintext)
        return plaintext

    def _read_frame(self, frame: _Frame) -> bytes:
        return _pread(self._file.fileno(), frame.length, frame.offset)

    def _open(self, index: int, ciphertext: bytes) -> tuple[bytes, bool]:
        """Decrypt chunk `index`, enforcing the final-flag rules; returns (plaintext, final)."""
        last = index == len(self._frames) - 1
        if not last:
            plaintext = self._cipher.open(index, ciphertext, final=False)
            if plaintext is not None:
                return plaintext, False
            if self._cipher.open(index, ciphertext, final=True) is not None:
                raise TamperedError(
                    f"{self._path}: chunk {index} is the final chunk but more data follows it"
                )
            raise self._failure(index)
        plaintext = self._cipher.open(index, ciphertext, final=True)
        if plaintext is not None:
            return plaintext, True
        plaintext = self._cipher.open(index, ciphertext, final=False)
        if plaintext is None:
            raise self._failure(index)
        if not self._allow_incomplete:
            raise TruncatedError(
                f"{self._path} ends after chunk {index} without its final chunk: the recording "
                "was interrupted or the file was truncated"
            )
        return plaintext, False

    def _failure(self, index: int) -> TamperedError:
        """Explain an authentication failure: tampering if another chunk authenticates."""
        probe = 1 if index == 0 else 0
        if probe < len(self._frames):
            ciphertext = self._read_frame(self._frames[probe])
            if any(self._cipher.open(probe, ciphertext, f) is not None for f in (False, True)):
                return TamperedError(
                    f"{self._path}: chunk {index} fails authentication: the file was altered, "
                    "or chunks were reordered, dropped or duplicated"
                )
        return WrongKeyError(
            f"{self._path}: cannot decrypt chunk {index}: wrong data key (or master key), or the "
            "file header or chunks are damaged"
        )


# -- crash recovery ----------------------------------------------------------------------------


def recover(path: Path, *, recording_id: str, data_key: bytes) -> FileSummary:
    """Make a file left by a crashed writer readable up to its last authentic chunk.

    Cuts off at most one torn chunk at the end (a crash cannot leave more), never anything that
    authenticates; refuses (and changes nothing) if the damage is not what a crash leaves. A
    file that already has its final chunk is returned unchanged with complete=True.
    """
    path = Path(path)
    with open(path, "r+b", buffering=0) as file:
        fd = file.fileno()
        file_size = os.fstat(fd).st_size
        header = _read_header(fd, file_size, recording_id)
        cipher = _Cipher(data_key, header)
        frames, _ = _scan(fd, len(header.raw), file_size, lenient=True)
        chain, plaintext_bytes, good_end, complete = header.digest, 0, len(header.raw), False
        chunks = 0
        for index, frame in enumerate(frames):
            ciphertext = _pread(fd, frame.length, frame.offset)
            plaintext = cipher.open(index, ciphertext, final=True)
            if plaintext is not None:
                if frame.end != file_size:
                    raise TamperedError(
                        f"{path}: data follows the final chunk {index}; not a crash, nothing "
                        "was changed"
                    )
                complete = True
            else:
                plaintext = cipher.open(index, ciphertext, final=False)
            if plaintext is None:
                if index == len(frames) - 1 and index > 0:
                    break  # a torn last write; chunk 0 authenticated, so the key is right
                if index == 0:
                    raise WrongKeyError(
                        f"{path}: the first chunk does not authenticate: wrong data key or "
                        "damaged file; nothing was changed"
                    )
                raise TamperedError(
                    f"{path}: chunk {index} fails authentication but later chunks follow; not "
                    "a crash, nothing was changed"
                )
            chain = _chain_step(chain, ciphertext)
            plaintext_bytes += len(plaintext)
            good_end = frame.end
            chunks += 1
        if file_size - good_end > _U32.size + MAX_CIPHERTEXT:
            raise TamperedError(
                f"{path}: {file_size - good_end} unreadable bytes at the end, more than one "
                "chunk: not a crash, nothing was changed"
            )
        if good_end != file_size:
            os.ftruncate(fd, good_end)
            os.fsync(fd)
    return FileSummary(
        track=header.track, header_digest=header.digest.hex(), chunks=chunks,
        chain_head=chain.hex(), plaintext_bytes=plaintext_bytes, complete=complete,
    )
