"""Reading nova logs of any shape into typed records, and recognising Nova's messages.

Stdlib only, and free of lmes's domain: the replay layer turns records and markers into
migration events.
"""

from logs_parsers.hosts import host_from_path, parse_host_mapping
from logs_parsers.nova_catalogue import (
    LIFECYCLE_STATES,
    MARKER_KINDS,
    RELEVANT_NEEDLES,
    Marker,
    recognise,
)
from logs_parsers.reader import LogReader, open_maybe_compressed, read_paths, read_stream
from logs_parsers.records import FileStats, ReadStats, Record

__all__ = [
    "LIFECYCLE_STATES",
    "MARKER_KINDS",
    "RELEVANT_NEEDLES",
    "FileStats",
    "LogReader",
    "Marker",
    "ReadStats",
    "Record",
    "host_from_path",
    "open_maybe_compressed",
    "parse_host_mapping",
    "read_paths",
    "read_stream",
    "recognise",
]
