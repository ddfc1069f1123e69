"""A word mapper's model folder: what a loadable one holds (`check_model_folder`), and how a mapper is written there
(`MapperFolderMixin`): atomically under `train.py`'s output-folder policy, and never over a model saved there since
the mapper was loaded.
"""

import glob
import os
import shutil
import tempfile

from huggingface_hub import CommitInfo, HfApi
from safetensors import safe_open

from .corrections import write_corrections
from .endpoint_handler import write_endpoint_handler
from .onnx_backend import OnnxWordMapping, export_onnx
from .output_folder import (
    FolderChangedError,
    OutputFolder,
    apply_umask,
    check_writable,
    folder_state,
    is_bertmap_config,
)

WEIGHTS_FILE = "model.safetensors"
PICKLE_WEIGHTS_FILE = "pytorch_model.bin"
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model"}
SAVE_LOCK_WAIT = 30.0  # seconds a save or a correction waits for another writer of the same folder


def check_safetensors_file(path: str) -> None:
    """Raise an error naming `path` if it is not a readable safetensors file."""
    try:
        with safe_open(path, framework="pt") as f:
            f.keys()
    except Exception as err:
        raise OSError(f"{path}: corrupt or unreadable safetensors file ({err})") from None


def check_model_folder(folder: str, allow_pickle: bool = False) -> None:
    """A clear error for a local folder that is not a loadable model: what is missing, or pickle-only weights."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"{folder}: no config.json, so this is not a saved model folder")
    if not is_bertmap_config(os.path.join(folder, "config.json")):
        raise ValueError(f"{folder}/config.json: not a bertmap model (its model_type is not 'bertmap', or the file is "
                         "not valid JSON); train one with train.py")
    names = set(os.listdir(folder))
    if not names & TOKENIZER_FILES:
        raise FileNotFoundError(f"{folder}: no tokenizer files ({', '.join(sorted(TOKENIZER_FILES))}) beside "
                                "config.json")
    if WEIGHTS_FILE in names:
        return check_safetensors_file(os.path.join(folder, WEIGHTS_FILE))
    if f"{WEIGHTS_FILE}.index.json" in names:
        return
    if PICKLE_WEIGHTS_FILE in names or f"{PICKLE_WEIGHTS_FILE}.index.json" in names:
        if allow_pickle:
            return
        raise ValueError(
            f"{folder}: only {PICKLE_WEIGHTS_FILE} (a pickle, which can run code when loaded) and no {WEIGHTS_FILE}; "
            "pass allow_pickle=True if you trust its source"
        )
    raise FileNotFoundError(f"{folder}: no weights ({WEIGHTS_FILE}) beside config.json")


class MapperFolderMixin:
    """Saving a `WordMapper` (its `model`, `tokenizer`, `decoding`, `card_data`, `source_folder`,
    `unsaved_corrections` and `_lock`) into a folder or to the Hub, as `PushToHubMixin` gives transformers' models
    theirs."""

    def _mark_saved(self) -> None:
        """Remember the model the source folder holds now (see `save_pretrained`) and how many words it has."""
        self._folder_state = folder_state(self.source_folder) if self.source_folder is not None else None
        self._saved_num_labels = self.model.config.num_labels

    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> None:
        """Write the model (with its decoding step), tokenizer, `word-mapping` pipeline code and corrections file;
        with results from training, also the card (rendered for `repo_id`) and the `*_results.json` files.

        The save follows `train.py`'s output-folder policy (`OutputFolder`): it holds the folder's lock, writes into
        a staging folder beside it and puts it in place with one rename, so a kill or a full disk at any point
        leaves the whole old model or the whole new one, and a symbolic link in the folder is replaced, never
        written through. Into the folder the mapper was loaded from, it is refused (`FolderChangedError`) if another
        run, page or process saved a model there since: reload it first.
        """
        self._save(str(save_directory), repo_id)

    def _save(self, folder: str, repo_id: str | None = None, change=None) -> None:
        """`save_pretrained`'s policy. With `change` (a correction: a function that changes the mapper and returns
        its undo), the change is made once the folder's lock is held and the folder is known unchanged, and undone
        if the save fails; if it added no word, only the decoding step and the corrections file are written (the
        rest of the folder is kept as it is). The mapper's own lock is taken only then, so answers are not held up
        while another writer of the folder finishes."""
        if isinstance(self.model, OnnxWordMapping):
            raise ValueError("save_pretrained needs the PyTorch model: load it without backend='onnx'")
        output = OutputFolder.prepare(folder, overwrite=True, flag="save_directory")
        into_source = self.source_folder is not None and output.path == os.path.realpath(self.source_folder)
        check_writable(output.path)
        with output.lock(wait=SAVE_LOCK_WAIT), self._lock:
            if into_source and folder_state(output.path) != self._folder_state:
                raise FolderChangedError(
                    f"{folder}: another run, page or process saved a model there since this one was loaded; nothing "
                    "was written. Load it again (WordMapper.from_pretrained) to work on the saved model, or save "
                    "this one into another folder")
            undo = change() if change is not None else None
            decoding_only = undo is not None and self.model.config.num_labels == self._saved_num_labels
            repo_id = repo_id or os.path.basename(output.path)
            try:
                output.save(lambda staging: self._write(staging, repo_id, decoding_only))
            except BaseException:
                if undo is not None:
                    undo()
                raise
            if into_source:
                self.unsaved_corrections.clear()
                self._mark_saved()

    def _write(self, folder: str, repo_id: str, decoding_only: bool = False) -> None:
        """Write this mapper's files into `folder` (a new or staging folder: no lock, no check)."""
        if decoding_only:
            self.decoding.save_pretrained(folder)
        else:
            self.model.save_pretrained(folder)  # with the decoding step and the pipeline code
            self.tokenizer.save_pretrained(folder)
        write_corrections(folder, self.unsaved_corrections, after=self.source_folder)
        for weights in glob.glob(os.path.join(folder, "*.safetensors")):
            apply_umask(weights)  # safetensors writes through a private temporary file (0600)
        if decoding_only:
            return
        if self.card_data is not None:  # the card of this model: its words, its decoding
            self.card_data.write(folder, self.model.config, self.decoding.config, repo_id)
        write_endpoint_handler(folder)  # Inference Endpoints serve the pushed folder as it is
        source = self.source_folder
        copied = glob.glob(os.path.join(source, "*_results.json")) if source is not None else []
        if source is not None and self.card_data is not None:
            copied += [os.path.join(source, picture) for picture in self.card_data.pictures]
        for path in copied:
            if os.path.isfile(path) and not os.path.lexists(os.path.join(folder, os.path.basename(path))):
                shutil.copy(path, folder)

    def export_onnx(self, output_dir: str | os.PathLike) -> str:
        """Save this mapper into `output_dir` and export its network to ONNX there (`model.onnx`), ready for
        `WordMapper.from_pretrained(output_dir, backend="onnx")`; returns the ONNX file's path."""
        with self._lock:
            self._write(str(output_dir), os.path.basename(os.path.abspath(output_dir)))
            return export_onnx(self.model, self.tokenizer, output_dir)

    def push_to_hub(self, repo_id: str, private: bool | None = None, revision: str | None = None,
                    commit_message: str = "Upload word mapper with hf_bertmap", token: str | None = None,
                    create_pr: bool = False) -> CommitInfo:
        """Upload the model, tokenizer, decoding step, pipeline code, card and results to `repo_id` in one commit.

        The repo is created if needed (`private` then applies) and so is the `revision` branch. Files that did not
        change are skipped, and a push that changes nothing makes no commit.
        """
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder, self._lock:
            self._write(folder, repo_id)
            return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                     commit_message=commit_message, create_pr=create_pr)


__all__ = ["MapperFolderMixin", "check_model_folder", "check_safetensors_file", "WEIGHTS_FILE", "PICKLE_WEIGHTS_FILE"]
