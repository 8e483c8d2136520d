"""Inputs that made a parser crash, hang or grow without bound (found by the fuzz
targets in tests/fuzz, or by reading the code around what they found), kept as
literals: each now gives a value or one of opendms's typed errors, quickly."""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import pytest

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.binlog.decoder import BinlogDecoder
from opendms.endpoints.mysql.binlog.events import Ev, uncompress
from opendms.endpoints.postgres.pgoutput import Decoder
from opendms.errors import ConfigError, DecodeError
from opendms.mapping import parse_table_mappings
from opendms.model import TableRef

from .test_binlog_decode import C, event, image, query_event, rows_body, table_map
from .test_pgoutput import REL, begin, tuple_data

# -- pgoutput ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        b"BBBB\xf9",  # fuzz: a truncated Begin (struct.error)
        b"I" + struct.pack("!I", 99) + b"N" + tuple_data([1]),  # an unknown relation (KeyError)
        b"C\x00" + bytes(16) + struct.pack("!q", 2**62),  # a commit time past year 9999
        b"R" + struct.pack("!I", 8) + b"public",  # a name without its NUL (ValueError)
    ],
)
def test_pgoutput_malformed_message_is_a_decode_error(message: bytes) -> None:
    decoder = Decoder()
    decoder.feed(REL)
    decoder.feed(begin(1))
    with pytest.raises(DecodeError, match="pgoutput: "):
        decoder.feed(message)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"I" + struct.pack("!I", 7) + b"N" + tuple_data([1, "a"]), "2 values for the 3 columns"),
        (b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!H", 3) + b"nnx", "unknown value kind"),
        (
            b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!H", 3) + b"nnt\x00\x00\x01\x00ab",
            "past the message's end",
        ),
    ],
)
def test_pgoutput_inconsistent_tuples_are_refused(message: bytes, reason: str) -> None:
    """A tuple that does not fit its relation was taken silently (short rows, any
    unknown kind byte read as an unchanged TOAST value, a value cut at the end)."""
    decoder = Decoder()
    decoder.feed(REL)
    with pytest.raises(DecodeError, match=reason):
        decoder.feed(message)


# -- binlog ------------------------------------------------------------------------------

COLS = [C("id", 3, nullable=False), C("name", 15, b"\x50\x00", charset=45)]


def _decoder_with_map(cols: list[C] = COLS) -> BinlogDecoder:
    decoder = BinlogDecoder(file="mysql-bin.000001")
    decoder.feed(event(Ev.TABLE_MAP, table_map(5, "db", "t", cols, [0]), 100))
    return decoder


@pytest.mark.timeout(20)
def test_binlog_rows_event_with_an_empty_image_does_not_loop_forever() -> None:
    """A rows event whose column bitmap names no column never advanced: the decoder
    appended changes forever (a hang and unbounded memory)."""
    decoder = _decoder_with_map()
    body = (5).to_bytes(6, "little") + b"\x01\x00" + b"\x02" + b"\x00" + b"\x00\x00"
    with pytest.raises(DecodeError, match="an image of no columns"):
        decoder.feed(event(Ev.WRITE_V1, body, 200))
    assert decoder.changes == []


def test_binlog_rows_past_the_event_end_are_refused() -> None:
    """A row cut short read on into the checksum, which came out as part of a value: now
    the row is a data error (a change with ``error``), never a value made of other bytes."""
    decoder = _decoder_with_map([COLS[0], C("raw", 15, b"\x50\x00", charset=63)])
    row = image([struct.pack("<i", 1), b"\x05abcde"])
    body = rows_body(5, 2, [row[:-2]])
    decoder.feed(event(Ev.WRITE_V1, body, 200))
    assert len(decoder.changes) == 1 and decoder.changes[0].values == ()
    assert "runs past the end of the event" in decoder.changes[0].error


@pytest.mark.parametrize(
    "body",
    [
        struct.pack("<Q", 1),  # a GTID event cut short (struct.error)
        b"",  # an empty GTID event (IndexError)
    ],
)
def test_binlog_truncated_event_is_a_decode_error(body: bytes) -> None:
    decoder = BinlogDecoder(file="mysql-bin.000001")
    with pytest.raises(DecodeError, match="malformed event of type 162"):
        decoder.feed(event(Ev.GTID, body, 300))


def test_binlog_header_shorter_than_19_bytes_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        BinlogDecoder(file="mysql-bin.000001").feed(b"\x00" * 7)


@pytest.mark.parametrize("sql", ["ALTER TABLE t ADD c INT(", "ALTER TABLE t MODIFY c DECIMAL(10,2"])
def test_binlog_alter_with_an_unclosed_type_parenthesis_is_a_decode_error(sql: str) -> None:
    # fuzz: StopIteration escaped from the column type's argument list
    with pytest.raises(DecodeError, match="unclosed parenthesis"):
        BinlogDecoder(file="mysql-bin.000001").feed(query_event(sql, log_pos=300))


def test_compressed_data_is_bounded_by_the_length_it_claims() -> None:
    """A compressed event or value inflated to whatever its zlib stream held: a few KB
    could claim 3 bytes and unpack to megabytes."""
    bomb = zlib.compress(b"\0" * 5_000_000)
    with pytest.raises(ValueError, match="not the 3 it claims"):
        uncompress(b"\x81\x03" + bomb)
    with pytest.raises(ValueError, match="more than MySQL sends"):
        uncompress(b"\x84\xff\xff\xff\xff" + bomb)
    assert uncompress(b"\x81\x03" + zlib.compress(b"xyz")) == b"xyz"


# -- endpoint URLs and settings ----------------------------------------------------------


@pytest.mark.parametrize("url", ["//[\x0c", "postgresql://u@[::1/db", "mysql://[x]y/db"])
def test_bad_url_is_a_config_error(url: str) -> None:
    """urlsplit's ValueError (an unbalanced IPv6 bracket) escaped as a traceback."""
    with pytest.raises(ConfigError, match="not a valid URL"):
        EndpointURL.parse(url)


# -- table mappings ----------------------------------------------------------------------


def _selection(schema: str, table: str) -> str:
    return (
        '[{"rule-type": "selection", "rule-id": "1", "rule-name": "1", "object-locator": '
        f'{{"schema-name": "{schema}", "table-name": "{table}"}}, "rule-action": "include"}}]'
    )


def test_reversed_character_range_matches_nothing() -> None:
    """``[z-s]`` raised re.error (not one of our errors) from the pattern compiler."""
    mappings = parse_table_mappings(_selection("[z-s]%", "%"))
    assert mappings.select([TableRef("s", "t"), TableRef("zoo", "t")]) == []
    mappings = parse_table_mappings(_selection("[s-z]%", "%"))
    assert mappings.select([TableRef("s", "t"), TableRef("a", "t")]) == [TableRef("s", "t")]


def test_many_wildcards_match_in_linear_time() -> None:
    """``%a%a%a…x`` backtracked exponentially: 10 of them took 16 s on a 40-character
    name, 30 of them forever."""
    mappings = parse_table_mappings(_selection("%", "%a" * 30 + "x"))
    names = [TableRef("s", "a" * 60), TableRef("s", "a" * 59 + "x")]
    started = time.monotonic()
    assert mappings.select(names) == [TableRef("s", "a" * 59 + "x")]
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("rule_id", ["---2", "²", "1" * 5000])
def test_rule_id_that_only_looks_like_digits(rule_id: str) -> None:
    """``"---2"`` and ``"²"`` passed an isdigit() test, then int() raised ValueError."""
    text = _selection("s", "t").replace('"rule-id": "1"', f'"rule-id": "{rule_id}"')
    with pytest.raises(ConfigError, match=r"\$\[0\]\.rule-id: expected an integer"):
        parse_table_mappings(text)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"rules": ' + "1" * 5000 + "}"])
def test_json_nested_too_deep_or_number_too_long(text: str) -> None:
    """json.loads raised RecursionError / ValueError (int digits limit), not ours."""
    with pytest.raises(ConfigError, match="JSON that cannot be read"):
        parse_table_mappings(text)


@pytest.mark.parametrize("text", ["name: " + "1" * 5000 + "\n", "[" * 5000])
def test_task_file_yaml_nested_too_deep_or_number_too_long(text: str, tmp_path: Any) -> None:
    from opendms.config import load_task_file

    path = tmp_path / "task.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_task_file(path)


def test_add_column_expression_nested_too_deep() -> None:
    """Found by the fuzzer: ``$id * !!!…2`` made sqlglot's parser recurse past the
    interpreter's limit (RecursionError)."""
    rule = {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "2",
        "rule-target": "column",
        "object-locator": {"schema-name": "%", "table-name": "%"},
        "rule-action": "add-column",
        "value": "twice",
        "expression": "$id * " + "!" * 2000 + "2",
        "data-type": {"type": "int8"},
    }
    with pytest.raises(ConfigError, match="invalid expression"):
        parse_table_mappings([rule])
    # SQLite itself parses expressions now; deep nesting is its parser-stack error.
    rule["expression"] = "(" * 5000 + "$id" + ")" * 5000
    with pytest.raises(ConfigError, match="invalid expression"):
        parse_table_mappings([rule])
