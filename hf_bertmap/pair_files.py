"""Pair files and the other text files a user hands in: CSV/TSV/JSON/JSON Lines pairs read as text, with errors
that name the file, line and field (`DataValidationError`); output-word lists and word descriptions.

Every reader starts from `read_text`: UTF-8, a byte order mark dropped, an undecodable byte named by offset.
"""

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset, Features, Value

from .configuration_bertmap import normalize_phrase

# The built-in output words' WordNet definitions (`--label_descriptions wordnet`), from the attribute synsets.
WORDNET_GLOSSES = Path(__file__).parent / "resources" / "wordnet_glosses.tsv"


class DataValidationError(ValueError):
    """A data file or row that cannot be used; the message names the file, row and field."""


def read_text(path: str | int, name: str | None = None) -> str:
    """The text of a file (or of an open file descriptor such as 0, standard input, left open); a UTF-8 byte
    order mark is dropped, other undecodable bytes are named by offset, and the file by `name` (default: `path`)."""
    with open(path, "rb", closefd=not isinstance(path, int)) as f:
        raw = f.read()
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise DataValidationError(f"{name or path}: not UTF-8 text: byte 0x{raw[err.start]:02x} at byte offset "
                                  f"{err.start} cannot be decoded") from None


def read_pair_file(path: str, columns: Sequence[str] | None = None,
                   hint: str = "choose with --phrase_column/--target_column") -> Dataset:
    """Read a .csv/.tsv/.json/.jsonl file of pairs as text: every cell a string (no number, date or boolean
    guessing), an empty cell or a JSON `null` missing (`None`).

    CSV/TSV: the first row is the header and every row has as many fields as it (else refused with the line
    number). JSON: an array of objects, JSON Lines (one object per line, in a .json file too), or one object of
    equally long columns; a value that is not a string or null is refused with its line and field. `columns`, if
    given, are the only fields read (the others are ignored); a missing one is refused, naming the file's (and
    `hint`: how to choose others).
    """
    text = read_text(path)
    if not text.strip():
        raise DataValidationError(f"{path}: the file is empty")
    extension = os.path.splitext(path)[1].lower()
    if extension in (".csv", ".tsv"):
        header, rows = _csv_rows(text, path, "\t" if extension == ".tsv" else ",")
    else:
        header, rows = _json_rows(text, path, columns)
    if not rows:
        raise DataValidationError(f"{path}: no rows" + (" (a header alone is not data)" if header else ""))
    wanted = list(header) if columns is None else list(dict.fromkeys(columns))
    for column in wanted:
        if column not in header:
            raise DataValidationError(f"{path}: no column {column!r}; the columns are {list(header)} ({hint})")
    data = {column: [row.get(column) for row in rows] for column in wanted}
    return Dataset.from_dict(data, features=Features({column: Value("string") for column in wanted}))


def _csv_rows(text: str, path: str, delimiter: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header, rows = None, []
    try:
        for fields in reader:
            if not fields:  # a blank line
                continue
            if header is None:
                header = fields
                twice = sorted({name for name in header if header.count(name) > 1})
                if twice:
                    raise DataValidationError(f"{path}, line {reader.line_num}: the header names column(s) {twice} "
                                              "more than once")
                continue
            if len(fields) != len(header):
                raise DataValidationError(
                    f"{path}, line {reader.line_num}: {len(fields)} fields, but the header has {len(header)} "
                    f"({delimiter!r}-separated: {header}); quote a field that holds {delimiter!r}")
            rows.append({name: value if value != "" else None for name, value in zip(header, fields)})
    except csv.Error as err:
        raise DataValidationError(f"{path}, line {reader.line_num}: cannot be read as CSV ({err})") from None
    return header or [], rows


def _json_rows(text: str, path: str,
               columns: Sequence[str] | None) -> tuple[list[str], list[dict[str, str | None]]]:
    records = _json_records(text, path)
    header: dict[str, None] = {}
    rows = []
    for where, record in records:
        if not isinstance(record, dict):
            raise DataValidationError(f"{path}, {where}: expected an object of fields, got {json.dumps(record)[:80]}")
        for key, value in record.items():
            if (columns is None or key in columns) and value is not None and not isinstance(value, str):
                raise DataValidationError(f"{path}, {where}, field {key!r}: {json.dumps(value)[:80]} is not text "
                                          "(every value must be a JSON string, or null for a missing one)")
            header.setdefault(key)
        rows.append(record)
    return list(header), rows


def _json_records(text: str, path: str) -> list[tuple[str, object]]:
    """(where, value) of each record: `line N` in an array or JSON Lines, `row N` in an object of columns."""
    stripped = text.lstrip()
    decoder = json.JSONDecoder()
    try:
        if stripped.startswith("["):
            return _json_array(text, decoder)
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":
                raise
        else:
            if isinstance(whole, dict) and whole and all(isinstance(v, list) for v in whole.values()):
                lengths = {key: len(values) for key, values in whole.items()}
                if len(set(lengths.values())) > 1:
                    raise DataValidationError(f"{path}: columns of different lengths {lengths}")
                size = next(iter(lengths.values()))
                return [(f"row {i + 1}", {key: values[i] for key, values in whole.items()}) for i in range(size)]
            return [("line 1", whole)]
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise DataValidationError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        return records
    except json.JSONDecodeError as err:
        raise DataValidationError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None


def _json_array(text: str, decoder: json.JSONDecoder) -> list[tuple[str, object]]:
    """The elements of a top-level JSON array, each with the line it starts on."""
    records, line, position = [], 1, 0
    index = text.index("[") + 1

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    index = skip(index)
    if index < len(text) and text[index] == "]":
        index += 1
    else:
        while True:
            line += text.count("\n", position, index)
            position = index
            value, index = decoder.raw_decode(text, index)
            records.append((f"line {line}", value))
            index = skip(index)
            if index < len(text) and text[index] == ",":
                index = skip(index + 1)
                continue
            if index < len(text) and text[index] == "]":
                index += 1
                break
            raise json.JSONDecodeError("Expecting ',' or ']'", text, index)
    if text[index:].strip():
        raise json.JSONDecodeError("Extra data", text, skip(index))
    return records


def read_label_file(path: str, lowercase: bool = True) -> list[str]:
    """The output words listed in `path`, one per line, normalised like targets (blank lines are skipped)."""
    words = []
    for line in read_text(path).splitlines():
        if line.strip():
            words.append(normalize_phrase(line, lowercase))
    if not words:
        raise DataValidationError(f"{path}: no words (one output word per line)")
    return words


def read_label_descriptions(source: str, lowercase: bool = True) -> dict[str, str]:
    """Word -> short description, from a pair file with columns `word` and `description` (any format
    `read_pair_file` reads), or `"wordnet"` for the built-in words' WordNet glosses. Words are normalised like
    targets; an empty cell or a word given twice is refused, naming the row."""
    path = str(WORDNET_GLOSSES) if source == "wordnet" else source
    rows = read_pair_file(path, ("word", "description"), hint="a file of word, description rows")
    descriptions: dict[str, str] = {}
    for i, (word, description) in enumerate(zip(rows["word"], rows["description"])):
        if not (word or "").strip() or not (description or "").strip():
            field = "word" if not (word or "").strip() else "description"
            raise DataValidationError(f"{path}, row {i + 1}: empty {field}")
        word = normalize_phrase(word, lowercase)
        if word in descriptions:
            raise DataValidationError(f"{path}, row {i + 1}: {word!r} is described twice")
        descriptions[word] = " ".join(description.split())
    return descriptions
