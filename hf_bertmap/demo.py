"""`bertmap demo MODEL`: a page to try a word mapper, see why a word came out and correct it (Gradio).

- **Try it**: a phrase, its top words with their probabilities (`WordMapper.explain`, the same decoding as
  `predict`), the abstention said plainly, the explanation (the classifier's and the memory's shares, a stored
  phrase, the nearest stored phrases), and "that's wrong — the right word is …" (`WordMapper.correct`), saved into
  the model folder at once. Phrases and words are shown as text, never rendered as HTML or Markdown.
- **Batch**: a text, CSV or TSV file of phrases in (at most 5 MB, 20,000 phrases of 500 characters), a CSV of
  predictions out (spreadsheet formulas neutralised), streamed by `iter_predict` with progress.
- **Model**: the output words, the test metrics and the card's pictures.

`bertmap demo MODEL --space DIR` writes a Hugging Face Space that runs with `gradio` and `transformers` alone: its app
uses the model's own pipeline and decoding code (`trust_remote_code`), none copied into the app.

Needs `pip install "hf_bertmap[demo]"`.
"""

import csv
import html
import io
import json
import logging
import os
import re
import tempfile
import threading

from .decoding_bertmap import MAX_PHRASE_CHARACTERS
from .inference import WordMapper
from .model_card import MIN_TRANSFORMERS, hub_repo_id
from .output_folder import ALL_RESULTS_FILE, FolderChangedError, FolderInUseError, OutputFolder
from .pair_files import DataValidationError, read_text
from .plots import RELIABILITY_DIAGRAM, TRAINING_CURVE

logger = logging.getLogger(__name__)

MAX_BATCH_PHRASES = 20_000
MAX_BATCH_BYTES = 5 * 1024 * 1024  # an uploaded file (also Gradio's upload limit)
KEEP_BATCH_OUTPUTS = 8  # the newest CSV files the Batch tab keeps for download; older ones are deleted
TOP_K = 5


def require_gradio():
    try:
        import gradio
    except ImportError:
        raise ImportError('the demo needs gradio: pip install "hf_bertmap[demo]"') from None
    return gradio


def check_phrase(phrase: str | None, what: str = "phrase") -> str:
    """The phrase (or a correction's word: `what`) to use, or a ValueError saying plainly what is wrong with it."""
    phrase = (phrase or "").strip()
    if not phrase:
        raise ValueError("Type a phrase first, e.g. “very chonky”." if what == "phrase" else f"Type the {what} first.")
    if len(phrase) > MAX_PHRASE_CHARACTERS:
        raise ValueError(f"That {what} has {len(phrase):,} characters; a {what} here has at most "
                         f"{MAX_PHRASE_CHARACTERS}.")
    return phrase


def text(value: object) -> str:
    """`value` as literal text inside the page's Markdown: HTML and Markdown syntax (images, links, emphasis, table
    cells) escaped, so a phrase or word that a visitor typed is shown, never rendered or fetched."""
    escaped = html.escape(" ".join(str(value).split()), quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~:])", r"\\\1", escaped)


def explanation_markdown(why: dict, min_score: float) -> str:
    """The explanation under the answer, as a person reads it."""
    lines = []
    if why["abstained"]:
        best = why["words"][0]
        lines.append(f"**No word**: the best, *{text(best['word'])}*, has probability {best['score']:.2f}, below "
                     f"this model's `min_score` of {min_score}.")
    if why["stored"]:
        lines.append("This exact phrase is a **stored phrase** (from training or a correction): it gets only its "
                     "stored words, ranked by the classifier.")
    lines.append("\n".join(["| word | probability | from the classifier | from similar stored phrases |",
                             "|---|---|---|---|"] + [f"| {text(w['word'])} | {w['score']:.3f} | "
                                                     f"{w['classifier']:.3f} | {w['memory']:.3f} |"
                                                     for w in why["words"]]))
    if why["neighbors"]:
        lines.append("**Nearest stored phrases**: " + ", ".join(
            f"*{text(n['phrase'])}* → {' / '.join(text(w) for w in n['words'])} ({n['similarity']:.2f})"
            for n in why["neighbors"]))
        if not why["stored"]:
            lines.append(f"Their vote makes up **{why['memory_share']:.0%}** of the probabilities (less the farther "
                         "the nearest stored phrase is).")
    return "\n\n".join(lines)


def read_batch(path: str) -> list[str]:
    """Phrases from an uploaded file: one per line (.txt), or the `phrase` column (or the first) of a .csv/.tsv."""
    if os.path.getsize(path) > MAX_BATCH_BYTES:
        raise ValueError(f"That file has {os.path.getsize(path):,} bytes; the page reads at most "
                         f"{MAX_BATCH_BYTES:,}. Use `bertmap predict MODEL --file FILE` for more.")
    try:
        content = read_text(path)
    except DataValidationError:
        raise ValueError("That file is not UTF-8 text: upload a .txt with one phrase per line, or a .csv/.tsv.") \
            from None
    if "\x00" in content:
        raise ValueError("That file is not text: upload a .txt with one phrase per line, or a .csv/.tsv.")
    extension = os.path.splitext(path)[1].lower()
    if extension in (".csv", ".tsv"):
        rows = [row for row in csv.reader(io.StringIO(content), delimiter="\t" if extension == ".tsv" else ",")
                if row]
        column = rows[0].index("phrase") if rows and "phrase" in rows[0] else 0
        phrases = [row[column].strip() for row in rows[1:] if len(row) > column]
    else:
        phrases = [line.strip() for line in content.splitlines()]
    phrases = [phrase for phrase in phrases if phrase]
    if not phrases:
        raise ValueError("That file holds no phrases.")
    if len(phrases) > MAX_BATCH_PHRASES:
        raise ValueError(f"That file holds {len(phrases):,} phrases; the page maps at most {MAX_BATCH_PHRASES:,}. "
                         "Use `bertmap predict MODEL --file FILE` for more.")
    for i, phrase in enumerate(phrases, start=1):
        if len(phrase) > MAX_PHRASE_CHARACTERS:
            raise ValueError(f"Phrase {i:,} of that file has {len(phrase):,} characters; a phrase here has at most "
                             f"{MAX_PHRASE_CHARACTERS}.")
    return phrases


def spreadsheet_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: one starting with `=`, `+`, `-`, `@` (a formula) gets a leading `'`."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def map_file(mapper: WordMapper, path: str, folder: str, progress=None) -> tuple[str, str]:
    """Map an uploaded file's phrases (`read_batch`) batch by batch, as `bertmap predict --file` streams them, into a
    CSV of phrase, word and probability in `folder` (no word when the model abstains; formulas neutralised), of
    which the newest `KEEP_BATCH_OUTPUTS` files are kept; returns its path and a message."""
    phrases = read_batch(path)
    handle, name = tempfile.mkstemp(suffix=".csv", prefix="predictions-", dir=folder)
    with open(handle, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["phrase", "word", "score"])
        done = 0
        for words in mapper.iter_predict(phrases, top_k=1):
            for phrase, top in zip(phrases[done : done + len(words)], words):
                writer.writerow([spreadsheet_cell(phrase), *((spreadsheet_cell(top[0][0]), top[0][1]) if top
                                                             else ("", ""))])
            done += len(words)
            if progress is not None:
                progress(done / len(phrases), desc=f"{done:,} of {len(phrases):,} phrases")
    outputs = sorted((os.path.join(folder, n) for n in os.listdir(folder)), key=os.path.getmtime, reverse=True)
    for old in outputs[KEEP_BATCH_OUTPUTS:]:
        os.remove(old)
    return name, f"✅ {len(phrases):,} phrases mapped."


def model_summary(mapper: WordMapper) -> tuple[str, list[str]]:
    """The Model tab's text (output words and test metrics) and its pictures; a results file that cannot be read
    is named in the text instead of its metrics."""
    folder = mapper.source_folder
    summary = f"**{len(mapper.words)} output words**: " + ", ".join(text(w) for w in mapper.words[:300])
    if len(mapper.words) > 300:
        summary += ", …"
    path = os.path.join(folder, ALL_RESULTS_FILE) if folder else None
    if path and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                results = json.load(f)
            if not isinstance(results, dict):
                raise ValueError(f"expected an object of metrics, got {type(results).__name__}")
        except (OSError, ValueError) as err:
            logger.warning(f"{path}: not read ({err})")
            summary += f"\n\n⚠️ {text(path)} could not be read, so no metrics are shown."
        else:
            rows = "\n".join(f"| {text(key[5:])} | {value:.4f} |" for key, value in results.items()
                             if key.startswith("test_") and isinstance(value, float))
            if rows:
                summary += "\n\n| test metric | value |\n|---|---|\n" + rows
    pictures = [os.path.join(folder, name) for name in (TRAINING_CURVE, RELIABILITY_DIAGRAM)
                if folder and os.path.isfile(os.path.join(folder, name))]
    return summary, pictures


class DemoPage:
    """What the page does, apart from its Gradio layout: each handler takes the page's inputs and returns what it
    shows. The page serves one mapper; if another page, process or run saved a model into its folder, a correction
    reloads that model first, so nothing saved there is overwritten or lost."""

    def __init__(self, mapper: WordMapper):
        self.mapper = mapper
        self._reload = threading.Lock()
        self._outputs = tempfile.TemporaryDirectory(prefix="bertmap-demo-")  # the Batch tab's CSV files

    def answer(self, phrase: str | None) -> tuple[dict, str]:
        try:
            why = self.mapper.explain(check_phrase(phrase), top_k=TOP_K)
        except ValueError as err:
            return {}, f"⚠️ {text(err)}"
        words = {} if why["abstained"] else {w["word"]: w["score"] for w in why["words"]}
        return words, explanation_markdown(why, self.mapper.decoding.config.min_score)

    def correct(self, phrase: str | None, word: str | None, add_word: bool) -> tuple[dict, str, str]:
        try:
            phrase, word = check_phrase(phrase), check_phrase(word, what="word")
            message = self._correct(phrase, word, bool(add_word))
        except (ValueError, OSError) as err:
            return (*self.answer(phrase), f"⚠️ {text(err)}")
        return (*self.answer(phrase), message)

    def _correct(self, phrase: str, word: str, add_word: bool) -> str:
        done = f"✅ *{text(phrase)}* now maps to *{text(word)}*"
        mapper = self.mapper
        try:
            path = mapper.correct(phrase, word, add_word=add_word)
        except FolderChangedError:
            with self._reload:
                if self.mapper is mapper:  # the first of several handlers to notice reloads
                    self.mapper = WordMapper.from_pretrained(mapper.source_folder, device=str(mapper.model.device))
            path = self.mapper.correct(phrase, word, add_word=add_word)
            return (f"{done} (saved in {text(path)}). The folder held a model saved since this page loaded it; the "
                    "page now serves that model, with this correction.")
        except FolderInUseError as err:
            return f"⚠️ Not corrected: {text(err)}."
        except PermissionError as err:
            mapper.correct(phrase, word, add_word=add_word, save=False)
            return f"{done} on this page only: {text(err)}."
        if path is None:
            return f"{done} on this page only (the model was not loaded from a folder)."
        return f"{done} (saved in {text(path)})."

    def batch(self, file, progress=None) -> tuple[str | None, str]:
        if file is None:
            return None, "⚠️ Upload a file first."
        try:
            return map_file(self.mapper, file if isinstance(file, str) else file.name, self._outputs.name, progress)
        except ValueError as err:
            return None, f"⚠️ {text(err)}"


def build_demo(mapper: WordMapper, title: str):
    """The Gradio page for `mapper` (see the module's docstring)."""
    gr = require_gradio()
    page = DemoPage(mapper)

    def batch(file, progress=gr.Progress()):  # noqa: B008 (how Gradio hands a handler its progress bar)
        return page.batch(file, progress)

    summary, pictures = model_summary(mapper)
    # Gradio's cache (uploads, downloads) is emptied of files older than an hour, every hour.
    with gr.Blocks(title=f"{title} — word mapper", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {text(title)}\nType a short phrase; the model answers with one word.")
        with gr.Tab("Try it"):
            phrase = gr.Textbox(label="Phrase", placeholder="very chonky", elem_id="phrase")
            go = gr.Button("Map", variant="primary", elem_id="map")
            words = gr.Label(label="Words", num_top_classes=TOP_K, elem_id="words")
            why = gr.Markdown(elem_id="why")
            with gr.Row():
                right = gr.Textbox(label="That's wrong — the right word is", elem_id="right-word")
                add_word = gr.Checkbox(label="add it as a new output word if it is not one", elem_id="add-word")
            fix = gr.Button("Correct (saved into the model at once)", elem_id="correct")
            message = gr.Markdown(elem_id="message")
            go.click(page.answer, phrase, [words, why])
            phrase.submit(page.answer, phrase, [words, why])
            fix.click(page.correct, [phrase, right, add_word], [words, why, message])
        with gr.Tab("Batch"):
            upload = gr.File(label="Phrases (.txt one per line, or .csv/.tsv with a phrase column)",
                             file_types=[".txt", ".csv", ".tsv"], elem_id="upload")
            run = gr.Button("Map the file", elem_id="run-batch")
            download = gr.File(label="Predictions (CSV)", elem_id="download")
            batch_message = gr.Markdown(elem_id="batch-message")
            run.click(batch, upload, [download, batch_message])
        with gr.Tab("Model"):
            gr.Markdown(summary, elem_id="summary")
            for picture in pictures:
                gr.Image(picture, show_label=False)
    return demo


SPACE_APP = '''"""A Space for a word mapper: the model's own pipeline (its code travels with it)."""

import gradio as gr
from transformers import pipeline

mapper = pipeline("word-mapping", model={model!r}, trust_remote_code=True)


def answer(phrase):
    phrase = (phrase or "").strip()
    if not phrase:
        return {{}}, "Type a phrase first."
    if len(phrase) > {limit}:
        return {{}}, "A phrase here has at most {limit} characters."
    words = mapper(phrase, top_k=5)
    return {{w["word"]: w["score"] for w in words}}, "" if words else "No word: the model is unsure."


with gr.Blocks(title={title!r}) as demo:
    gr.Markdown({heading!r})
    phrase = gr.Textbox(label="Phrase", placeholder="very chonky")
    words = gr.Label(label="Words", num_top_classes=5)
    message = gr.Markdown()
    gr.Button("Map", variant="primary").click(answer, phrase, [words, message])
    phrase.submit(answer, phrase, [words, message])

if __name__ == "__main__":
    demo.launch()
'''


def write_space(model: str, folder: str, title: str, overwrite: bool = False) -> str:
    """A ready Hugging Face Space in `folder` for the Hub model (or folder) `model`; returns the app's path. The
    folder follows the output-folder policy (`OutputFolder`): one that holds other files is refused unless
    `overwrite`, and the files are put in place whole."""
    output = OutputFolder.prepare(folder, overwrite, flag="--space", overwrite_flag="--overwrite")
    heading = f"# {text(title)}\nType a short phrase; the model answers with one word."

    def write(staging: str) -> None:
        with open(os.path.join(staging, "app.py"), "w", encoding="utf-8") as f:
            f.write(SPACE_APP.format(model=model, title=title, heading=heading, limit=MAX_PHRASE_CHARACTERS))
        with open(os.path.join(staging, "requirements.txt"), "w", encoding="utf-8") as f:
            f.write(f"transformers>={MIN_TRANSFORMERS}\ntorch\nsafetensors\n")
        with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as f:
            models = f"models:\n- {model}\n" if hub_repo_id(model) else ""  # the Hub accepts only Hub ids there
            f.write(f"---\ntitle: {json.dumps(title)}\nsdk: gradio\napp_file: app.py\n{models}---\n\n"
                    f"# {text(title)}\n\nTry the word mapper `{model}`: type a short phrase, get one word.\n")

    with output.lock():
        output.save(write)
    return os.path.join(output.path, "app.py")


__all__ = ["DemoPage", "build_demo", "write_space", "check_phrase", "read_batch", "map_file", "model_summary",
           "explanation_markdown", "text"]
