"""Reader for IANA's plain-text rendering of the port registry.

The text rendering is the HTML table flattened: each record's non-empty cells are joined
by single spaces, so columns cannot be told apart by delimiters. Theory of operation:

1. Split the file into the header (title, ``Last Updated``), the records (after the column
   header line) and the contact table (after ``ID Name Organization Contact URI ...``).
2. Read the contact table first: its ids tell a person token ``[Dave_Clark]`` from a
   reference token ``[RFC6810]``.
3. A record starts on a line that begins with ``[name] port[-port] [transport]`` or
   ``name transport``; other lines continue the record above (an XML ``<br/>`` in a
   description renders as a line break, two of them as a blank line).
4. In a record's text the description runs up to the first anchor: a person token, an ISO
   date, or a token that can only be a reference (``[RFC...]``, a draft, a URI). After it
   come, in column order, persons, up to two dates, references, a DCCP service code and
   free text (unauthorized-use report or assignment notes).

Ambiguities the rendering leaves, resolved by the XML's own statistics: a lone date is the
registration date of a named record but the modification date of an unnamed one (Reserved
or Unassigned rows change when a port is de-assigned); an odd number of person tokens is
one assignee then the contacts, an even number splits in halves; free text mentioning
unauthorized or unofficial use is the unauthorized-use column, other free text is notes.
Line breaks inside notes are lost by the rendering (they come out as spaces).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from portlabel.errors import RegistryFormatError
from portlabel.registry.model import Person, Record, RegistrySource
from portlabel.registry.sources.common import clean_text, decode_utf8, parse_port_range

COLUMN_HEADER = (
    "Service Name Port Number Transport Protocol Description Assignee Contact Registration "
    "Date Modification Date Reference Service Code Unauthorized Use Reported Assignment Notes"
)
PEOPLE_HEADER = "ID Name Organization Contact URI Last Updated"
PEOPLE_TITLE = "Contact Information"

_NAME = r"(?=[^\s\[\]]*[A-Za-z])[A-Za-z0-9][^\s\[\]]*"
_TRANSPORT = r"tcp|udp|sctp|dccp"
_NUMBERED_HEAD = re.compile(
    rf"^(?:(?P<name>{_NAME}) )??(?P<port>\d+(?:-\d+)?)(?: (?P<transport>{_TRANSPORT}))?(?= |$)"
)
_PORTLESS_HEAD = re.compile(rf"^(?P<name>{_NAME}) (?P<transport>{_TRANSPORT})(?= |$)")
_TOKEN = re.compile(r"\[[^\]]*\]|[^\s\[]+|\[")
_DATE = re.compile(r"^\d{4}-\d{2}(?:-\d{2})?$")
_REFERENCE_ONLY = re.compile(r"^(?:RFC\d+|RFC-\S+|draft-\S+|\d+|[a-z]+://\S+)$", re.IGNORECASE)
_UNAUTHORIZED = re.compile(r"unauthori[sz]ed|unofficial", re.IGNORECASE)
_PERSON_LINE = re.compile(r"^\[(?P<id>[^\]]+)\](?: +(?P<rest>.*))?$")
_URI_START = re.compile(r"^(?:mailto|tel|https?|ftp):", re.IGNORECASE)
# Words that mark a contact-table entry as an organisation when the text alone is ambiguous.
_LEGAL_SUFFIXES = frozenset(
    "inc incorporated llc ltd limited gmbh ag sa sas sarl s.a s.r.l srl bv b.v corp "
    "corporation co company plc pty oy ab as kk k.k".split()
)
_ORG_WORDS = _LEGAL_SUFFIXES | frozenset(
    """group forum alliance consortium foundation association institute university
    universität laboratories labs lab systems software technologies technology networks
    communications solutions committee council project team organization organisation
    iana iesg ietf iab irtf microsystems electronics industries international services""".split()
)


@dataclass
class _Token:
    text: str
    start: int
    end: int

    @property
    def bracketed(self) -> str | None:
        if len(self.text) >= 2 and self.text[0] == "[" and self.text[-1] == "]":
            return clean_text(self.text[1:-1]).replace("\n", " ")
        return None


def read_services_text(path: str, data: bytes, sha256: str) -> RegistrySource:
    """Parse the plain-text rendering of IANA's port registry (or an excerpt of it)."""
    text = decode_utf8(path, data)
    lines = [line.rstrip() for line in text.splitlines()]
    first = _find_line(lines, COLUMN_HEADER, 0)
    if first is None:
        raise RegistryFormatError(path, "no column header line 'Service Name Port Number ...'")
    people_at = _find_line(lines, PEOPLE_HEADER, first + 1)
    end = len(lines) if people_at is None else people_at
    if people_at is not None and PEOPLE_TITLE in (s.strip() for s in lines[first + 1 : end]):
        end = max(i for i in range(first + 1, end) if lines[i].strip() == PEOPLE_TITLE)
    source = RegistrySource("iana-text", path, sha256, updated=_last_updated(lines[:first]))
    if people_at is not None:
        source.people = _read_people(path, lines, people_at + 1)
    for start, block in _blocks(path, lines, first + 1, end):
        source.records.append(_read_record(path, block, start, source.people))
    label = source.label
    source.records = [r.with_source(label) for r in source.records]
    return source


def _find_line(lines: list[str], wanted: str, start: int) -> int | None:
    for i in range(start, len(lines)):
        if " ".join(lines[i].split()) == wanted:
            return i
    return None


def _last_updated(header: list[str]) -> str | None:
    for i, line in enumerate(header[:-1]):
        if line.strip() == "Last Updated" and _DATE.match(header[i + 1].strip()):
            return header[i + 1].strip()
    return None


def _blocks(path: str, lines: list[str], first: int, end: int):
    """Yield (line number, lines) for each record: its first line and its continuations."""
    start: int | None = None
    block: list[str] = []
    for i in range(first, end):
        line = lines[i]
        if _starts_record(line, lines[i - 1], start is not None):
            if start is not None:
                yield start, block
            start, block = i + 1, [line]
        elif start is not None:
            block.append(line)
        elif line.strip():
            raise RegistryFormatError(
                path, "expected a record (name, port, transport ...)", f"line {i + 1}"
            )
    if start is not None:
        yield start, block


def _starts_record(line: str, previous: str, in_record: bool) -> bool:
    if not line.strip() or line[0].isspace():
        return False
    if _NUMBERED_HEAD.match(line) or _PORTLESS_HEAD.match(line):
        return True
    # A portless record without transport looks like a continuation line; continuations
    # come after a description's line breaks, which render as a blank line in practice.
    return in_record and bool(previous.strip()) and bool(re.match(_NAME + r"(?= |$)", line))


def _head(line: str) -> tuple[str | None, str | None, str | None, str]:
    """(name, port text, transport, rest of the line)."""
    m = _NUMBERED_HEAD.match(line) or _PORTLESS_HEAD.match(line)
    if m is None:
        name, _, rest = line.partition(" ")
        return name, None, None, rest
    groups = m.groupdict()
    return groups.get("name"), groups.get("port"), groups.get("transport"), line[m.end() :]


def _read_record(path: str, block: list[str], line: int, people: dict[str, Person]) -> Record:
    name, port, transport, rest = _head(block[0])
    try:
        port_lo, port_hi = parse_port_range(port) if port else (None, None)
    except ValueError as exc:
        raise RegistryFormatError(path, str(exc), f"line {line}") from None
    body = "\n".join([rest, *block[1:]])
    tokens = [_Token(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(body)]
    at = next((i for i, t in enumerate(tokens) if _is_anchor(t, people)), len(tokens))
    description = clean_text(body[: tokens[at].start] if at < len(tokens) else body)
    persons: list[str] = []
    dates: list[str] = []
    references: list[str] = []
    service_code: int | None = None
    while at < len(tokens) and not dates and not references and _is_person(tokens[at], people):
        persons.append(tokens[at].bracketed or "")
        at += 1
    while at < len(tokens) and not references and len(dates) < 2 and _DATE.match(tokens[at].text):
        dates.append(tokens[at].text)
        at += 1
    while at < len(tokens) and tokens[at].bracketed is not None:
        references.append(tokens[at].bracketed or "")
        at += 1
    if at < len(tokens) and transport == "dccp" and tokens[at].text.isdigit():
        service_code = int(tokens[at].text)
        at += 1
    free = clean_text(body[tokens[at].start :]) if at < len(tokens) else ""
    free = " ".join(free.split())  # the rendering loses the notes' own line breaks
    registered, modified = _dates(dates, named=name is not None)
    assignee, contact = _split_persons(persons)
    unauthorized = free if free and _UNAUTHORIZED.search(free) else None
    return Record(
        name=name,
        port_lo=port_lo,
        port_hi=port_hi,
        transport=transport,
        description=description,
        assignee=assignee,
        contact=contact,
        registered=registered,
        modified=modified,
        references=tuple(r for r in references if r),
        service_code=service_code,
        unauthorized=unauthorized,
        notes=free if free and unauthorized is None else None,
        line=line,
    )


def _is_person(token: _Token, people: dict[str, Person]) -> bool:
    content = token.bracketed
    if content is None:
        return False
    if people:
        return content in people
    # An excerpt without its contact table: an id is one word that is not a reference.
    return " " not in content and not _REFERENCE_ONLY.match(content)


def _is_anchor(token: _Token, people: dict[str, Person]) -> bool:
    content = token.bracketed
    if content is None:
        return bool(_DATE.match(token.text))
    return _is_person(token, people) or bool(_REFERENCE_ONLY.match(content))


def _dates(dates: list[str], named: bool) -> tuple[str | None, str | None]:
    if len(dates) == 2:
        return dates[0], dates[1]
    if len(dates) == 1:
        return (dates[0], None) if named else (None, dates[0])
    return None, None


def _split_persons(persons: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if len(persons) % 2:
        return tuple(persons[:1]), tuple(persons[1:])
    half = len(persons) // 2
    return tuple(persons[:half]), tuple(persons[half:])


def _read_people(path: str, lines: list[str], first: int) -> dict[str, Person]:
    people: dict[str, Person] = {}
    for i in range(first, len(lines)):
        line = lines[i].strip()
        if not line:
            continue
        m = _PERSON_LINE.match(line)
        if m is None:
            raise RegistryFormatError(
                path, "expected a contact line '[ID] Name ...'", f"line {i + 1}"
            )
        pid = m.group("id").strip()
        people[pid] = parse_person(pid, (m.group("rest") or "").split())
    return people


def parse_person(pid: str, words: list[str]) -> Person:
    """Split ``Name Organization URI Date`` words, using the id to find where the name ends."""
    updated = words.pop() if words and _DATE.match(words[-1]) else None
    uri_at = next((i for i, w in enumerate(words) if _URI_START.match(w)), len(words))
    uri = " ".join(words[uri_at:]) or None
    name_words, org_words = _split_name_org(pid, words[:uri_at])
    return Person(
        id=pid,
        name=" ".join(name_words) or None,
        org=" ".join(org_words) or None,
        uri=uri,
        updated=updated,
    )


def _split_name_org(pid: str, words: list[str]) -> tuple[list[str], list[str]]:
    """IANA ids are the person's name with underscores (plus a number when reused)."""
    parts = [p for p in pid.split("_") if p]
    if len(parts) > 1 and parts[-1].isdigit():
        parts.pop()
    if parts:
        parts[-1] = parts[-1].rstrip("0123456789") or parts[-1]
    matched, used = 0, 0
    while matched < len(words) and used < len(parts):
        step = _parts_matched(words[matched], parts[used:])
        if step is None:
            break
        matched, used = matched + 1, used + step
    name, org = words[:matched], words[matched:]
    if not name or not org:
        # The whole text is the id: a person's name or an organisation's, say which by look.
        return ([], words) if _looks_like_org(words) else (words, [])
    if all(_norm(w) in _LEGAL_SUFFIXES for w in org):
        return [], words  # "Acme Systems Ltd.": the id covered the name, not a person
    return name, org


def _norm(word: str) -> str:
    return re.sub(r"[^\w.]", "", word.casefold()).strip(".") or word.casefold()


_TRANSLIT = str.maketrans(
    {"ø": "o", "æ": "ae", "ß": "ss", "đ": "d", "ł": "l", "&": "and", "@": "at"}
)


def _fold(text: str) -> str:
    """Casefolded ASCII letters and digits only, for matching a word against an id."""
    text = unicodedata.normalize("NFKD", text.casefold().translate(_TRANSLIT))
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def _parts_matched(word: str, parts: list[str]) -> int | None:
    """How many id parts ``word`` stands for (2 for ``In-sik`` in ``In_sik``); None: not it."""
    w = _fold(word)
    if w == "and" and _fold(parts[0]) != "and":
        return 0  # ids often leave out "&"
    joined = ""
    for count, part in enumerate(parts, 1):
        joined += _fold(part)
        if w == joined:
            return count
        if not w.startswith(joined):
            break
    first = _fold(parts[0])
    # Initials ("B." for B) and ids cut short ("Desi" for Desire).
    return 1 if w and first and (first.startswith(w) or w.startswith(first)) else None


def _looks_like_org(words: list[str]) -> bool:
    if len(words) == 1:
        return True  # persons are named with at least two words; ids like IESG are bodies
    return any(_norm(w) in _ORG_WORDS for w in words)
