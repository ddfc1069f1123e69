"""A model folder's corrections file, `corrections.tsv`: the (phrase, word) pairs `WordMapper.correct` taught it,
oldest first, a pair file (header `phrase<TAB>target`) that `train.py --train_file` reads as is.

The file is a record, not a source the model is loaded from: a correction is saved into the model itself (its
memory, and a new output word into its weights) together with its row here, in one atomic save
(`WordMapper.correct`). So every loader — `WordMapper`, the `word-mapping` pipeline, ONNX, `train.py
--model_name_or_path` — answers the same, and a damaged or foreign file never stops a model from loading.
"""

import csv
import io
import logging
import os
from collections.abc import Sequence

logger = logging.getLogger(__name__)

CORRECTIONS_FILE = "corrections.tsv"
HEADER = ("phrase", "target")


def corrections_path(folder: str | os.PathLike) -> str:
    return os.path.join(str(folder), CORRECTIONS_FILE)


def read_corrections(folder: str | os.PathLike) -> list[tuple[str, str]]:
    """The (phrase, word) pairs of `folder`'s corrections file, oldest first; none without one. A file that cannot
    be read as a pair file, and rows without a phrase or a word, are reported in one warning and skipped."""
    from .pair_files import read_pair_file

    path = corrections_path(folder)
    if not os.path.lexists(path):
        return []
    try:
        rows = read_pair_file(path, HEADER, hint="the header of a corrections file is phrase<TAB>target")
    except (OSError, ValueError) as err:
        logger.warning(f"{' '.join(str(err).split())}; {path} was skipped")
        return []
    pairs, skipped = [], []
    for line, (phrase, word) in enumerate(zip(rows["phrase"], rows["target"]), start=2):
        if phrase and phrase.strip() and word and word.strip():
            pairs.append((phrase, word))
        else:
            skipped.append(line)
    if skipped:
        shown = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
        logger.warning(f"{path}: {len(skipped)} row(s) without a phrase or a word skipped (line {shown})")
    return pairs


def write_corrections(folder: str | os.PathLike, pairs: Sequence[tuple[str, str]],
                      after: str | os.PathLike | None = None) -> None:
    """Write `folder`'s corrections file: the bytes of `after`'s file as they are (if it has one), then `pairs`.
    Nothing is written when there is nothing to write. The caller writes into a staging folder that is then put in
    place whole (`OutputFolder.save`), so the file is never seen half-written."""
    previous = b""
    if after is not None and os.path.islink(corrections_path(after)):
        logger.warning(f"{corrections_path(after)}: a symbolic link, not followed; the new file starts afresh")
    elif after is not None and os.path.isfile(corrections_path(after)):
        with open(corrections_path(after), "rb") as f:
            previous = f.read()
    if not previous.strip() and not pairs:
        return
    rows = io.StringIO()
    writer = csv.writer(rows, delimiter="\t", lineterminator="\n")
    if not previous.strip():
        previous = b""
        writer.writerow(HEADER)
    elif not previous.endswith(b"\n"):
        previous += b"\n"
    writer.writerows(pairs)
    with open(corrections_path(folder), "wb") as f:
        f.write(previous + rows.getvalue().encode("utf-8"))


__all__ = ["CORRECTIONS_FILE", "corrections_path", "read_corrections", "write_corrections"]
