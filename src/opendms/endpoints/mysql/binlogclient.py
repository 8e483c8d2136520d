"""The MySQL/MariaDB replication protocol, client side: a binlog dump connection.

PyMySQL does the handshake and authentication (every auth plugin it knows);
then this client talks on the raw socket: COM_REGISTER_SLAVE, COM_BINLOG_DUMP,
and reads the event stream with large reads, splitting packets itself (16 MB
multi-packet events included). Reading never blocks longer than the caller's
wait, so the capture can report an idle stream every half second.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.conn import connect, pymysql_module, translate
from opendms.errors import ConnectError, EndpointError

COM_BINLOG_DUMP = 0x12
COM_REGISTER_SLAVE = 0x15
MAX_PACKET = 0xFFFFFF
READ_SIZE = 1 << 20
MARIA_SLAVE_CAPABILITY_GTID = 4
SILENCE_LIMIT = 15.0  # seconds without data or a heartbeat: the connection is dead


class BinlogServerError(EndpointError):
    """The server sent an error packet on the dump connection (``code``: MySQL error)."""

    def __init__(self, endpoint: str, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(endpoint, f"binlog dump failed: MySQL error {code}: {text}")


class BinlogClient:
    """One binlog dump connection.

    ``server_id`` must be unique among the server's replicas: the server drops an
    older dump connection registered with the same id.
    """

    def __init__(self, url: EndpointURL, server_id: int, heartbeat: float = 1.0) -> None:
        self.url = url
        self.server_id = server_id
        self.heartbeat = heartbeat
        self.conn: Any = None
        self.sock: socket.socket | None = None
        self.checksum = False
        self.mariadb = False
        self._buf = bytearray()
        self._pos = 0
        self._received = time.monotonic()

    # -- setup

    def connect(self) -> None:
        """Connect, announce what this client understands and register as a replica."""
        self.conn = connect(self.url, database="", read_timeout=None)
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT VERSION(), @@global.binlog_checksum")
                version, checksum = cur.fetchone()
                self.mariadb = "mariadb" in str(version).lower()
                self.checksum = str(checksum).upper() != "NONE"
                cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
                cur.execute(f"SET @mariadb_slave_capability = {MARIA_SLAVE_CAPABILITY_GTID}")
                cur.execute(f"SET @master_heartbeat_period = {int(self.heartbeat * 1e9)}")
        except pymysql_module().Error as exc:
            self.close()
            raise translate(exc, self.url) from exc
        self.sock = self.conn._sock
        self._register()

    def _register(self) -> None:
        def text(value: str) -> bytes:
            raw = value.encode()[:255]
            return bytes([len(raw)]) + raw

        body = struct.pack("<I", self.server_id) + text("opendms") + text("") + text("")
        body += struct.pack("<HII", 0, 0, 0)  # port, replication rank, master id
        self._send(bytes([COM_REGISTER_SLAVE]) + body)
        self._expect_ok()

    def dump(self, file: str, offset: int, gtid: str = "") -> None:
        """Start streaming at ``file``:``offset``, or (MariaDB, ``gtid`` given) just
        after the GTID state ``gtid`` (the file name and offset are then ignored)."""
        if gtid:
            self._gtid_start(gtid)
            file, offset = "", 4
        body = struct.pack("<IHI", offset, 0, self.server_id) + file.encode()
        self._send(bytes([COM_BINLOG_DUMP]) + body)
        self._received = time.monotonic()

    def _gtid_start(self, gtid: str) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute("SET @slave_connect_state = %s", (gtid,))
                cur.execute("SET @slave_gtid_strict_mode = 0")
                cur.execute("SET @slave_gtid_ignore_duplicates = 0")
        except pymysql_module().Error as exc:
            raise translate(exc, self.url) from exc

    # -- packets

    def _send(self, payload: bytes) -> None:
        assert self.sock is not None
        header = struct.pack("<I", len(payload))[:3] + b"\x00"
        try:
            self.sock.sendall(header + payload)
        except OSError as exc:
            raise ConnectError(str(self.url), f"lost the connection: {exc}") from exc

    def _expect_ok(self) -> None:
        """Read one reply packet; an error packet raises."""
        deadline = time.monotonic() + 30
        while True:
            packets = self._packets()
            if packets:
                self._check(packets[0])
                return
            if time.monotonic() > deadline:
                raise ConnectError(str(self.url), "no reply to COM_REGISTER_SLAVE")
            self._fill(1.0)

    def _check(self, payload: bytes) -> None:
        if payload[:1] == b"\xff":
            code = struct.unpack_from("<H", payload, 1)[0]
            text = payload[9:].decode("utf-8", "replace") if payload[3:4] == b"#" else ""
            text = text or payload[3:].decode("utf-8", "replace")
            raise BinlogServerError(str(self.url), code, text)

    def read_events(self, wait: float) -> list[bytes]:
        """The complete events received so far, waiting up to ``wait`` seconds for
        the first one; [] when nothing arrived (the stream is idle)."""
        events = self._events()
        if events:
            return events
        if self._fill(wait):
            return self._events()
        silence = time.monotonic() - self._received
        if silence > max(SILENCE_LIMIT, 10 * self.heartbeat):
            raise ConnectError(
                str(self.url), f"no binlog data or heartbeat from the server for {silence:.0f} s"
            )
        return []

    def _events(self) -> list[bytes]:
        out = []
        for payload in self._packets():
            first = payload[:1]
            if first == b"\x00":
                out.append(payload[1:])
            elif first == b"\xfe" and len(payload) < 9:
                raise ConnectError(str(self.url), "the server ended the binlog stream")
            else:
                self._check(payload)
        return out

    def _packets(self) -> list[bytes]:
        """Split the complete packets off the receive buffer (multi-packet joined)."""
        buf, pos, out = self._buf, self._pos, []
        size = len(buf)
        while size - pos >= 4:
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            if length == MAX_PACKET:
                joined = self._joined(pos)
                if joined is None:
                    break
                payload, pos = joined
            elif size - pos - 4 >= length:
                payload = bytes(buf[pos + 4 : pos + 4 + length])
                pos += 4 + length
            else:
                break
            out.append(payload)
        if pos == size:
            buf.clear()
            pos = 0
        elif pos > READ_SIZE:
            del buf[:pos]
            pos = 0
        self._pos = pos
        return out

    def _joined(self, pos: int) -> tuple[bytes, int] | None:
        """A payload of 16 MB or more: packets of MAX_PACKET bytes, then a shorter one."""
        buf, parts = self._buf, []
        while True:
            if len(buf) - pos < 4:
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            if len(buf) - pos - 4 < length:
                return None
            parts.append(bytes(buf[pos + 4 : pos + 4 + length]))
            pos += 4 + length
            if length < MAX_PACKET:
                return b"".join(parts), pos

    def _fill(self, wait: float) -> bool:
        """Receive what the socket has (waiting up to ``wait``); False when nothing came."""
        sock = self.sock
        assert sock is not None
        pending = getattr(sock, "pending", None)  # TLS keeps decrypted bytes itself
        if not (pending and pending()):
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                return False
        try:
            data = sock.recv(READ_SIZE)
        except OSError as exc:
            raise ConnectError(str(self.url), f"lost the binlog connection: {exc}") from exc
        if not data:
            raise ConnectError(str(self.url), "the server closed the binlog connection")
        self._buf += data
        self._received = time.monotonic()
        return True

    def close(self) -> None:
        conn, self.conn, self.sock = self.conn, None, None
        if conn is not None:
            # no COM_QUIT (the dump stream may be mid-packet); a half-dead socket may
            # fail to close, which has nothing to report
            with contextlib.suppress(Exception):
                conn._force_close()
