"""The output-folder policy shared by `train.py` and `bertmap export`: which folder a run may write, one run at a
time, and how the final files get there without losing anything already on disk.

- The path is resolved first (`.`, `..`, `~` and symbolic links), so everything happens beside the real folder.
- A folder that does not exist, is empty, or holds a bertmap model, its checkpoints or evaluation results is used.
  Any other non-empty folder is refused unless `overwrite` (`--overwrite_output_dir`, `bertmap export
  --overwrite`); then the run's files are written among the others, which stay as they are.
- One run at a time: a run holds a lock file beside the folder (`.NAME.lock`, an advisory `flock` that the system
  releases when the process ends, so a killed run never leaves a stale lock); a second run stops with an error.
- The final files are written into a staging folder beside the target (`.NAME.saving-XXXX`, a unique name).
  A folder of the run's own is then replaced whole by two renames, after every entry the run did not write
  (checkpoints, logs, a user's file) has been hard-linked into the staging folder, so the old folder stays
  complete until the rename: a reader sees the whole old model or the whole new one. Into a folder holding other
  files (`overwrite`), or the current folder, the run's files are moved one by one and nothing else is touched.
- A save that was interrupted leaves its staging (or previous) folder beside the target; the next run names it in
  a warning and deletes nothing.
- Saved files get the permissions of the user's umask (0644 files, 0755 folders, typically).
"""

import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob

try:
    import fcntl
except ImportError:  # Windows: the lock file is created exclusively instead (a killed run leaves it behind)
    fcntl = None

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-\d+$")
RESULTS = re.compile(r"^\w+_results\.json$")
ALL_RESULTS_FILE = "all_results.json"  # every metric of a run, as `Trainer.save_metrics` names it


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(folder: str) -> None:
    """Give every file and folder under `folder` (and `folder` itself) the permissions the user's umask gives new
    ones: writers that use temporary files (`mkstemp`, 0600) would otherwise hide them from other users."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


def is_bertmap_config(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("model_type") == "bertmap"
    except (OSError, ValueError, AttributeError):
        return False


def holds_run_output(folder: str) -> bool:
    """Whether `folder` holds what a bertmap run writes: a model, a checkpoint of one, or only evaluation results."""
    names = os.listdir(folder)
    if is_bertmap_config(os.path.join(folder, "config.json")):
        return True
    if any(CHECKPOINT.match(name) and is_bertmap_config(os.path.join(folder, name, "config.json")) for name in names):
        return True
    return bool(names) and all(RESULTS.match(name) for name in names)


def leftovers(folder: str) -> list[str]:
    """Staging and previous folders an interrupted save left beside `folder` (this version's and older ones')."""
    parent, name = os.path.split(folder)
    patterns = (f".{name}.saving-*", f".{name}.previous-*", f"{name}.saving", f"{name}.previous")
    return sorted(path for pattern in patterns for path in glob(os.path.join(glob_escape(parent), pattern)))


def glob_escape(path: str) -> str:
    return re.sub(r"([*?[])", r"[\1]", path)


class FolderInUseError(OSError):
    """Another run holds the output folder's lock."""


class FolderChangedError(OSError):
    """A model folder was saved by someone else since it was loaded."""


# The files a save of a model writes; a change to any of them means the folder holds another model (or decoding).
MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "decoding_config.json",
               "memory.safetensors")


def folder_state(folder: str) -> tuple:
    """What identifies the model a folder holds now: each model file's inode, size and modification time. Every save
    (training, `bertmap export`, `WordMapper.save_pretrained`, a correction) changes it."""
    state = []
    for name in MODEL_FILES:
        try:
            st = os.stat(os.path.join(folder, name))
        except FileNotFoundError:
            continue
        state.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(state)


def check_writable(folder: str) -> None:
    """A clear `PermissionError` when a save could not replace `folder`: the folder itself or the folder it sits in
    (where the lock and the staging folder live) is read-only."""
    parent = os.path.dirname(folder)
    if os.path.isdir(parent) and not os.access(parent, os.W_OK | os.X_OK):
        raise read_only(folder)
    if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{folder}: cannot be written: it is read-only")


def read_only(folder: str) -> PermissionError:
    return PermissionError(f"{folder}: cannot be written: the folder it is in ({os.path.dirname(folder)}), where "
                           "the lock and the staging folder go, is read-only")


@dataclass(frozen=True)
class OutputFolder:
    """Where a run writes, checked by `prepare` before any work.

    Args:
        path (`str`):
            The resolved folder (no symbolic link, no `.`).
        in_place (`bool`):
            Write the run's files among files it did not write (a folder that held others, or the current folder)
            instead of replacing the folder whole.
    """

    path: str
    in_place: bool = False

    @classmethod
    def prepare(cls, path: str | os.PathLike, overwrite: bool = False, flag: str = "--output_dir",
                overwrite_flag: str = "--overwrite_output_dir") -> "OutputFolder":
        """Resolve `path` and check that a run may write there; warn about leftovers of an interrupted save."""
        folder = os.path.realpath(os.path.expanduser(str(path)))
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise NotADirectoryError(f"{flag} {path}: is a file, not a folder")
        for leftover in leftovers(folder):
            logger.warning(f"{leftover}: left by an interrupted save into {folder}; nothing in it was deleted. Keep "
                           "what you need from it, then remove it")
        entries = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        foreign = bool(entries) and not holds_run_output(folder)
        if foreign and not overwrite:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise FileExistsError(
                f"{flag} {path}: the folder is not empty ({len(entries)} entries: {shown}) and holds no bertmap model; "
                f"choose another folder, or pass {overwrite_flag} to write the model's files into it (other files "
                "are left as they are)")
        cwd = os.path.realpath(os.getcwd())
        holds_cwd = cwd == folder or cwd.startswith(folder.rstrip(os.sep) + os.sep)
        return cls(folder, in_place=foreign or holds_cwd)

    @classmethod
    def for_run(cls, training_args, model: str) -> "OutputFolder | None":
        """The checked output folder of a `train.py` run, its resolved path set as `--output_dir`; None for an
        evaluation without `--output_dir`, which writes nothing. An evaluation never writes into the model folder
        it reads (`model`)."""
        if training_args.output_dir is None:
            return None
        output = cls.prepare(training_args.output_dir, training_args.overwrite_output_dir)
        if not training_args.do_train and os.path.isdir(model) and os.path.realpath(model) == output.path:
            raise ValueError(f"--output_dir {training_args.output_dir} is the model folder being evaluated, whose "
                             "results stay as they are; choose another folder for this evaluation's results")
        training_args.output_dir = output.path
        return output

    @contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[None]:
        """Hold `.NAME.lock` beside the folder; a second writer into the same folder fails, naming it, at once or
        after waiting up to `wait` seconds for the first (a short save, such as a correction's)."""
        parent, name = os.path.split(self.path)
        path = os.path.join(parent, f".{name}.lock")
        in_use = FolderInUseError(f"{self.path} is being written by another run (it holds {path}); wait for it to "
                                  "finish or choose another folder")
        deadline = time.monotonic() + wait
        while True:
            try:
                os.makedirs(parent, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | (0 if fcntl else os.O_EXCL), 0o666)
            except FileExistsError:
                fd = None
            except PermissionError:
                raise read_only(self.path) from None
            try:
                if fd is None:
                    raise FileExistsError(path)
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, FileExistsError):
                if fd is not None:
                    os.close(fd)
                if time.monotonic() >= deadline:
                    raise in_use from None
                time.sleep(0.05)
                continue
            try:  # the holder before us may have removed the file after we opened it: lock the file now there
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.unlink(path)
            os.close(fd)

    def begin(self) -> str:
        """Create and return a new, empty staging folder beside the target."""
        parent, name = os.path.split(self.path)
        os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix=f".{name}.saving-", dir=parent)

    def commit(self, staging: str) -> None:
        """Put what `staging` holds into the folder (see the module's docstring) and remove `staging`."""
        apply_umask(staging)
        if self.in_place:
            os.makedirs(self.path, exist_ok=True)
            merge_into(staging, self.path)
            os.rmdir(staging)
            return
        if not os.path.isdir(self.path):
            os.rename(staging, self.path)
            return
        for name in os.listdir(self.path):
            if not os.path.lexists(os.path.join(staging, name)):
                link_tree(os.path.join(self.path, name), os.path.join(staging, name))
        shutil.copymode(self.path, staging)
        parent, name = os.path.split(self.path)
        previous = tempfile.mkdtemp(prefix=f".{name}.previous-", dir=parent)
        os.rename(self.path, previous)  # replaces the empty folder `previous`
        os.rename(staging, self.path)
        shutil.rmtree(previous)  # the replaced model files, and links to what lives on in the new folder

    def save(self, write: Callable[[str], None]) -> None:
        """`write(staging)` then `commit(staging)`; if either fails before the folder is replaced, the folder is
        untouched and the staging folder is removed (it holds only what `write` wrote)."""
        staging = self.begin()
        try:
            write(staging)
            self.commit(staging)
        except BaseException:
            if os.path.isdir(self.path) or not os.path.isdir(staging):  # else staging is the only whole copy
                shutil.rmtree(staging, ignore_errors=True)
            raise


def write_error(err: BaseException, where: str) -> OSError | None:
    """An error naming `where` for a failed write (a full disk, a quota, a file size limit: `OSError`, or the
    messages torch's and safetensors' writers give them); None for other errors."""
    text = str(err)
    if isinstance(err, OSError) or "PytorchStreamWriter" in text or "unexpected pos" in text or (
            type(err).__name__ == "SafetensorError" and "serializ" in text):
        return OSError(f"{where}: could not be written ({' '.join(text.split()) or type(err).__name__})")
    return None


def link_tree(source: str, target: str) -> None:
    """`target` as a copy of `source` made of hard links (a real copy where a link is not possible)."""
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
    else:
        link_or_copy(source, target)


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, target)


def merge_into(source: str, target: str) -> None:
    """Move every entry of `source` into `target` one by one, replacing same-named files, merging folders."""
    for name in os.listdir(source):
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if os.path.isdir(src) and not os.path.islink(src) and os.path.isdir(dst) and not os.path.islink(dst):
            merge_into(src, dst)
            os.rmdir(src)
        else:
            os.replace(src, dst)


__all__ = ["ALL_RESULTS_FILE", "OutputFolder", "FolderInUseError", "FolderChangedError", "apply_umask",
           "check_writable", "folder_state", "holds_run_output", "write_error"]
