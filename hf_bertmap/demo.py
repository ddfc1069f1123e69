"""`bertmap demo MODEL`: a page to try a word mapper, see why a word came out and correct it (Gradio).

- **Try it**: a phrase, its top words with their probabilities (`WordMapper.explain`, the same decoding as
  `predict`), the abstention said plainly, the explanation (the classifier's and the memory's shares, a stored
  phrase, the nearest stored phrases), and "that's wrong — the right word is …" (`WordMapper.correct`) with a
  button that saves the model.
- **Batch**: a text, CSV or TSV file of phrases in, a CSV of predictions out, streamed by `iter_predict` with
  progress.
- **Model**: the output words, the test metrics and the card's pictures.

`bertmap demo MODEL --space DIR` writes a Hugging Face Space that runs with `gradio` and `transformers` alone: its app
uses the model's own pipeline and decoding code (`trust_remote_code`), none copied into the app.

Needs `pip install "hf_bertmap[demo]"`.
"""

import csv
import io
import json
import os
import tempfile

from .inference import WordMapper
from .model_card import hub_repo_id

MAX_PHRASE_CHARACTERS = 500
MAX_BATCH_PHRASES = 20_000
TOP_K = 5


def require_gradio():
    try:
        import gradio
    except ImportError:
        raise ImportError('the demo needs gradio: pip install "hf_bertmap[demo]"') from None
    return gradio


def check_phrase(phrase: str | None) -> str:
    """The phrase to map, or a ValueError saying plainly what is wrong with it."""
    phrase = (phrase or "").strip()
    if not phrase:
        raise ValueError("Type a phrase first, e.g. “very chonky”.")
    if len(phrase) > MAX_PHRASE_CHARACTERS:
        raise ValueError(f"That phrase has {len(phrase):,} characters; a phrase here has at most "
                         f"{MAX_PHRASE_CHARACTERS}.")
    return phrase


def explanation_markdown(why: dict, min_score: float) -> str:
    """The explanation under the answer, as a person reads it."""
    lines = []
    if why["abstained"]:
        best = why["words"][0]
        lines.append(f"**No word**: the best, *{best['word']}*, has probability {best['score']:.2f}, below this "
                     f"model's `min_score` of {min_score}.")
    if why["stored"]:
        lines.append("This exact phrase is a **stored phrase** (from training or a correction): it gets only its "
                     "stored words, ranked by the classifier.")
    lines.append("\n".join(["| word | probability | from the classifier | from similar stored phrases |",
                             "|---|---|---|---|"] + [f"| {w['word']} | {w['score']:.3f} | {w['classifier']:.3f} | "
                                                     f"{w['memory']:.3f} |" for w in why["words"]]))
    if why["neighbors"]:
        lines.append("**Nearest stored phrases**: " + ", ".join(
            f"*{n['phrase']}* → {' / '.join(n['words'])} ({n['similarity']:.2f})" for n in why["neighbors"]))
    return "\n\n".join(lines)


def read_batch(path: str) -> list[str]:
    """Phrases from an uploaded file: one per line (.txt), or the `phrase` column (or the first) of a .csv/.tsv."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ValueError("That file is not UTF-8 text: upload a .txt with one phrase per line, or a .csv/.tsv.") \
            from None
    if "\x00" in text:
        raise ValueError("That file is not text: upload a .txt with one phrase per line, or a .csv/.tsv.")
    extension = os.path.splitext(path)[1].lower()
    if extension in (".csv", ".tsv"):
        rows = [row for row in csv.reader(io.StringIO(text), delimiter="\t" if extension == ".tsv" else ",") if row]
        column = rows[0].index("phrase") if rows and "phrase" in rows[0] else 0
        phrases = [row[column].strip() for row in rows[1:] if len(row) > column]
    else:
        phrases = [line.strip() for line in text.splitlines()]
    phrases = [phrase for phrase in phrases if phrase]
    if not phrases:
        raise ValueError("That file holds no phrases.")
    if len(phrases) > MAX_BATCH_PHRASES:
        raise ValueError(f"That file holds {len(phrases):,} phrases; the page maps at most {MAX_BATCH_PHRASES:,}. "
                         "Use `bertmap predict MODEL --file FILE` for more.")
    return phrases


def map_file(mapper: WordMapper, path: str, progress=None) -> tuple[str, str]:
    """Map an uploaded file's phrases (`read_batch`) batch by batch, as `bertmap predict --file` streams them, into a
    CSV of phrase, word and probability (no word when the model abstains); returns its path and a message."""
    phrases = read_batch(path)
    out = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="", encoding="utf-8")
    with out:
        writer = csv.writer(out)
        writer.writerow(["phrase", "word", "score"])
        done = 0
        for words in mapper.iter_predict(phrases, top_k=1):
            for phrase, top in zip(phrases[done : done + len(words)], words):
                writer.writerow([phrase, *(top[0] if top else ("", ""))])
            done += len(words)
            if progress is not None:
                progress(done / len(phrases), desc=f"{done:,} of {len(phrases):,} phrases")
    return out.name, f"✅ {len(phrases):,} phrases mapped."


def model_summary(mapper: WordMapper) -> tuple[str, list[str]]:
    """The Model tab's text (output words and test metrics) and its pictures."""
    folder = mapper.source_folder
    results = {}
    if folder and os.path.isfile(os.path.join(folder, "all_results.json")):
        with open(os.path.join(folder, "all_results.json")) as f:
            results = {k: v for k, v in json.load(f).items() if k.startswith("test_") and isinstance(v, float)}
    text = f"**{len(mapper.words)} output words**: " + ", ".join(mapper.words[:300])
    if len(mapper.words) > 300:
        text += ", …"
    if results:
        rows = "\n".join(f"| {key[5:]} | {value:.4f} |" for key, value in results.items())
        text += "\n\n| test metric | value |\n|---|---|\n" + rows
    pictures = [os.path.join(folder, name) for name in ("training_curve.png", "reliability_diagram.png")
                if folder and os.path.isfile(os.path.join(folder, name))]
    return text, pictures


def build_demo(mapper: WordMapper, title: str):
    """The Gradio page for `mapper` (see the module's docstring)."""
    gr = require_gradio()
    min_score = mapper.decoding.config.min_score

    def answer(phrase):
        try:
            why = mapper.explain(check_phrase(phrase), top_k=TOP_K)
        except ValueError as err:
            return {}, f"⚠️ {err}"
        words = {} if why["abstained"] else {w["word"]: w["score"] for w in why["words"]}
        return words, explanation_markdown(why, min_score)

    def correct(phrase, word, add_word):
        try:
            mapper.correct(check_phrase(phrase), (word or "").strip(), add_word=bool(add_word))
        except ValueError as err:
            return (*answer(phrase), f"⚠️ {err}")
        where = f" (kept in {os.path.join(mapper.source_folder, 'corrections.tsv')})" if mapper.source_folder else ""
        return (*answer(phrase), f"✅ *{phrase.strip()}* now maps to *{word.strip()}*{where}.")

    def save():
        if mapper.source_folder is None:
            return "⚠️ This model was loaded from the Hub: save it with `WordMapper.save_pretrained` in Python."
        mapper.save_pretrained(mapper.source_folder)
        return f"✅ Saved to {mapper.source_folder}."

    def batch(file, progress=gr.Progress()):  # noqa: B008 (how Gradio hands a handler its progress bar)
        if file is None:
            return None, "⚠️ Upload a file first."
        try:
            return map_file(mapper, file if isinstance(file, str) else file.name, progress)
        except ValueError as err:
            return None, f"⚠️ {err}"

    summary, pictures = model_summary(mapper)
    with gr.Blocks(title=f"{title} — word mapper") as demo:
        gr.Markdown(f"# {title}\nType a short phrase; the model answers with one word.")
        with gr.Tab("Try it"):
            phrase = gr.Textbox(label="Phrase", placeholder="very chonky", elem_id="phrase")
            go = gr.Button("Map", variant="primary", elem_id="map")
            words = gr.Label(label="Words", num_top_classes=TOP_K, elem_id="words")
            why = gr.Markdown(elem_id="why")
            with gr.Row():
                right = gr.Textbox(label="That's wrong — the right word is", elem_id="right-word")
                add_word = gr.Checkbox(label="add it as a new output word if it is not one", elem_id="add-word")
            with gr.Row():
                fix = gr.Button("Correct", elem_id="correct")
                keep = gr.Button("Save model", elem_id="save")
            message = gr.Markdown(elem_id="message")
            go.click(answer, phrase, [words, why])
            phrase.submit(answer, phrase, [words, why])
            fix.click(correct, [phrase, right, add_word], [words, why, message])
            keep.click(save, None, message)
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


SPACE_APP = '''"""A Space for the word mapper {model!r}: the model's own pipeline (its code travels with it)."""

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
    gr.Markdown("# {title}\\nType a short phrase; the model answers with one word.")
    phrase = gr.Textbox(label="Phrase", placeholder="very chonky")
    words = gr.Label(label="Words", num_top_classes=5)
    message = gr.Markdown()
    gr.Button("Map", variant="primary").click(answer, phrase, [words, message])
    phrase.submit(answer, phrase, [words, message])

if __name__ == "__main__":
    demo.launch()
'''


def write_space(model: str, folder: str, title: str) -> str:
    """A ready Hugging Face Space in `folder` for the Hub model (or folder) `model`; returns the app's path."""
    os.makedirs(folder, exist_ok=True)
    app = os.path.join(folder, "app.py")
    with open(app, "w", encoding="utf-8") as f:
        f.write(SPACE_APP.format(model=model, title=title, limit=MAX_PHRASE_CHARACTERS))
    with open(os.path.join(folder, "requirements.txt"), "w", encoding="utf-8") as f:
        f.write("transformers>=5.24\ntorch\nsafetensors\n")
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        models = f"models:\n- {model}\n" if hub_repo_id(model) else ""  # the Hub accepts only Hub ids there
        f.write(f"---\ntitle: {title}\nsdk: gradio\napp_file: app.py\n{models}---\n\n# {title}\n\n"
                f"Try the word mapper `{model}`: type a short phrase, get one word.\n")
    return app


__all__ = ["build_demo", "write_space", "check_phrase", "read_batch", "map_file", "model_summary",
           "explanation_markdown"]
