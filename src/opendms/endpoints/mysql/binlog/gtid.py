"""The GTID position of a binlog stream (MariaDB domains, MySQL GTID sets)."""

from __future__ import annotations


class GtidState:
    """The GTID position after the last commit.

    MariaDB: the last ``domain-server-seq`` per domain (``0-1-42,1-2-7``); MySQL:
    the executed set per source uuid (``uuid:1-42:50``). ``known`` is False when
    the stream started without a state (then no GTID is reported, so a partial
    state is never used to resume).
    """

    def __init__(self, text: str | None) -> None:
        self.known = text is not None
        self.domains: dict[int, tuple[int, int]] = {}
        self.sets: dict[str, list[list[int]]] = {}
        for item in (text or "").replace("\n", "").split(","):
            if item.strip():
                self._parse(item.strip())
        self._text: str | None = None

    def _parse(self, item: str) -> None:
        if ":" in item:
            uuid, *ranges = item.split(":")
            spans = [[int(a), int(b or a)] for a, _, b in (r.partition("-") for r in ranges)]
            self.sets[uuid.lower()] = spans
            return
        domain, server, seq = (int(x) for x in item.split("-"))
        self.domains[domain] = (server, seq)

    def add_mariadb(self, domain: int, server: int, seq: int) -> None:
        self.domains[domain] = (server, seq)
        self._text = None

    def add_mysql(self, uuid: str, gno: int) -> None:
        spans = self.sets.setdefault(uuid, [])
        if spans and spans[-1][1] + 1 == gno:
            spans[-1][1] = gno
        elif not any(a <= gno <= b for a, b in spans):
            spans.append([gno, gno])
            spans.sort()
        self._text = None

    def merge_list(self, gtids: list[tuple[int, int, int]]) -> None:
        """A GTID_LIST event: the full state at the start of a binlog file."""
        for domain, server, seq in gtids:
            if domain not in self.domains:
                self.domains[domain] = (server, seq)
        self.known = True
        self._text = None

    def __str__(self) -> str:
        if not self.known:
            return ""
        if self._text is None:
            parts = [f"{d}-{s}-{n}" for d, (s, n) in sorted(self.domains.items())]
            for uuid, spans in sorted(self.sets.items()):
                ranges = ":".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
                parts.append(f"{uuid}:{ranges}")
            self._text = ",".join(parts)
        return self._text
