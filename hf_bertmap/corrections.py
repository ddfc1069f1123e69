"""A model folder's corrections file, `corrections.tsv`: the (phrase, word) pairs `WordMapper.correct` taught it,
oldest first, a pair file (header `phrase<TAB>target`) that `train.py --train_file` reads as is.

The file is a record, not a source the model is loaded from: a correction is saved into the model itself (its
memory, and a new output word into its weights) together with its row here, in one atomic save
(`WordMapper.correct`). So every loader — `WordMapper`, the `word-mapping` pipeline, ONNX, `train.py
--model_name_or_path` — answers the same, and a damaged or foreign file never stops a model from loading.
"""

import copy
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


class CorrectionsMixin:
    """`WordMapper.correct` and the corrections a saved model lacks (`pending_corrections`, `load_corrections`)."""

    def warn_pending_corrections(self) -> None:
        """Name, in one warning, the source folder's corrections that its saved model does not hold."""
        pending = self.pending_corrections()
        if pending:
            logger.warning(f"{corrections_path(self.source_folder)}: {len(pending)} correction(s) not in the saved "
                           "model (every loader answers without them); mapper.load_corrections() teaches them and "
                           "save_pretrained keeps them")

    def pending_corrections(self) -> list[tuple[str, str]]:
        """The source folder's corrections (`corrections.tsv`) that its saved model does not hold: rows written by
        hand, or by a version that saved corrections only there."""
        if self.source_folder is None:
            return []
        return [(phrase, word) for phrase, word in read_corrections(self.source_folder)
                if not self._stores(*self.decoding.normalize([phrase]), *self.decoding.normalize([word]))]

    def load_corrections(self) -> list[tuple[str, str]]:
        """Teach this mapper the source folder's pending corrections (`pending_corrections`) in memory, as
        `correct(..., save=False)` does; rows whose word is not an output word are skipped with a warning (add it
        with `add_labels` first). Returns the pairs taught; `save_pretrained` keeps them."""
        taught, unknown = [], []
        for phrase, word in self.pending_corrections():
            (target,) = self.decoding.normalize([word], what="word")
            if target in self.model.config.label2id:
                taught.append((phrase, target))
            else:
                unknown.append(target)
        if unknown:
            logger.warning(f"{corrections_path(self.source_folder)}: skipped {len(unknown)} correction(s) to words "
                           f"that are not output words: {sorted(set(unknown))[:10]}")
        with self._lock:
            if taught:
                self._store([phrase for phrase, _ in taught], [[word] for _, word in taught])
            self.unsaved_corrections += taught
        return taught

    def correct(self, phrase: str, word: str, add_word: bool = False, save: bool = True) -> str | None:
        """Teach the model that `phrase` means `word`, at once and for good: the phrase becomes a stored phrase whose
        only word is `word` (whatever the memory weight). A word that is not an output word is refused unless
        `add_word`, which adds it first (`add_labels`).

        With `save` (the default) and a model loaded from a folder, the correction is saved there at once, in one
        atomic save under the folder's lock (see `save_pretrained`): the memory, a new word's row, and the pair
        appended to the folder's corrections file (`corrections.tsv`, a pair file `train.py --train_file` reads as
        is). Returns that file's path. If the save is impossible — the folder is read-only, or another run or page
        saved a model there since this one was loaded (`FolderChangedError`) — nothing changes and the error says
        why. `save=False` keeps the correction in this mapper only (returns None); `save_pretrained` keeps it.
        """
        (text,) = self.decoding.normalize([phrase])
        (target,) = self.decoding.normalize([word], what="word")
        if target not in self.model.config.label2id and not add_word:
            raise ValueError(f"{word!r} is not an output word of this model; choose one of its words, or pass "
                             "add_word=True to add it")
        if save and self.source_folder is not None:
            def change():
                undo = self._undo_point(head=target not in self.model.config.label2id)
                self._teach(text, target)
                return undo

            self._save(self.source_folder, change=change)
            return corrections_path(self.source_folder)
        with self._lock:
            self._teach(text, target)
        return None

    def _teach(self, text: str, target: str) -> None:
        """Store the pair (adding the word first if it is new) and list it for the next save."""
        if target not in self.model.config.label2id:
            self.add_labels([target])
        self._store([text], [[target]])
        self.unsaved_corrections.append((text, target))

    def _undo_point(self, head: bool):
        """A function that puts back the memory this mapper has now and, with `head`, its words and head (a failed
        save's undo)."""
        config, decoding = self.model.config, self.decoding
        labels, memory, unsaved = dict(config.id2label), decoding.memory, list(self.unsaved_corrections)
        classifier = copy.deepcopy(self.model.classifier) if head else None

        def undo() -> None:
            if classifier is not None:
                self.model.classifier = classifier
                config.id2label = labels
                config.label2id = {label: i for i, label in labels.items()}
            decoding.memory = memory
            self.unsaved_corrections[:] = unsaved

        return undo


__all__ = ["CORRECTIONS_FILE", "CorrectionsMixin", "corrections_path", "read_corrections", "write_corrections"]
