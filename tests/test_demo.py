"""The demo page: its messages for bad input, the Space it writes, and the page itself in a real browser (Debian's
chromium and chromedriver, driven by selenium)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import block_hf_bertmap_code, subprocess_env

from hf_bertmap import WordMapper
from hf_bertmap.demo import (
    KEEP_BATCH_OUTPUTS,
    MAX_BATCH_BYTES,
    MAX_BATCH_PHRASES,
    DemoPage,
    check_phrase,
    explanation_markdown,
    map_file,
    model_summary,
    read_batch,
    write_space,
)

HOSTILE = ["![w](http://127.0.0.1:9/pixel)", '<img src="http://127.0.0.1:9/img">', "[official site](http://x.test)",
           "<script>alert(1)</script>", "a | b", "**bold** _it_", "http://x.test/autolink"]


def rendered(markdown: str) -> str:
    """The HTML a CommonMark renderer with tables and autolinks (as the page's) makes of `markdown`."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"linkify": False}).enable("table").render(markdown)


@pytest.mark.parametrize(("phrase", "message"), [("", "Type a phrase first"), ("   ", "Type a phrase first"),
                                                 ("x" * 10_000, "That phrase has 10,000 characters; a phrase here "
                                                                "has at most 500.")])
def test_an_empty_or_overlong_phrase_gets_a_plain_message(phrase, message):
    with pytest.raises(ValueError, match=message):
        check_phrase(phrase)


def test_uploads_are_read_as_phrases_and_bad_ones_get_a_plain_message(tmp_path):
    (tmp_path / "a.txt").write_text("large\n\nvery hot\n")
    (tmp_path / "b.csv").write_text("id,phrase\n1,fishy\n2,tall\n")
    assert read_batch(str(tmp_path / "a.txt")) == ["large", "very hot"]
    assert read_batch(str(tmp_path / "b.csv")) == ["fishy", "tall"]
    (tmp_path / "c.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(ValueError, match="That file is not"):
        read_batch(str(tmp_path / "c.txt"))
    (tmp_path / "d.txt").write_text("big\n" * 100_000)
    with pytest.raises(ValueError, match=f"holds 100,000 phrases; the page maps at most {MAX_BATCH_PHRASES:,}"):
        read_batch(str(tmp_path / "d.txt"))


def test_phrases_and_words_are_shown_as_text_never_as_html_or_markdown(saved_model):
    why = {"abstained": True, "stored": False, "memory_share": 0.2,
           "words": [{"word": w, "score": 0.05, "classifier": 0.05, "memory": 0.0} for w in HOSTILE],
           "neighbors": [{"phrase": p, "words": [p], "similarity": 0.5} for p in HOSTILE]}
    page = rendered(explanation_markdown(why, 0.1))
    assert "<img" not in page and "<a " not in page and "<script" not in page and "<strong>bold" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # a word of the table, a neighbour and its word
    assert page.count("![w](http://127.0.0.1:9/pixel)") == 4  # and the best word of the abstention
    assert len(page.split("<tr>")) == 2 + len(HOSTILE)  # a `|` in a word splits no cell
    mapper = WordMapper.from_pretrained(saved_model)
    _, _, message = DemoPage(mapper).correct("quite big", HOSTILE[0], add_word=True)
    assert "<img" not in rendered(message) and "![w](http://127.0.0.1:9/pixel)" in rendered(message)


def test_a_correction_word_has_the_length_limit_of_a_phrase(saved_model):
    page = DemoPage(WordMapper.from_pretrained(saved_model))
    _, _, message = page.correct("quite big", "w" * 1_000_000, add_word=True)
    assert "That word has 1,000,000 characters; a word here has at most 500" in message
    assert page.mapper.words == ["height", "size", "smell"] and not (saved_model / "corrections.tsv").exists()


def test_the_page_corrects_the_model_another_writer_saved_since_it_loaded(saved_model):
    first, second = DemoPage(WordMapper.from_pretrained(saved_model)), DemoPage(WordMapper.from_pretrained(saved_model))
    assert "saved in" in first.correct("alpha phrase", "bulk", add_word=True)[2]
    _, _, message = second.correct("beta phrase", "flavor", add_word=True)
    assert "the page now serves that model, with this correction" in message
    assert second.mapper.predict(["alpha phrase", "beta phrase"]) == [[("bulk", 1.0)], [("flavor", 1.0)]]
    assert WordMapper.from_pretrained(saved_model).words == ["height", "size", "smell", "bulk", "flavor"]


def test_a_batch_upload_is_bounded_and_its_outputs_do_not_pile_up(saved_model, tmp_path):
    (tmp_path / "big.txt").write_bytes(b"big\n" * (MAX_BATCH_BYTES // 4 + 1))
    with pytest.raises(ValueError, match=f"That file has {MAX_BATCH_BYTES + 4:,} bytes; the page reads at most"):
        read_batch(str(tmp_path / "big.txt"))
    (tmp_path / "long.txt").write_text("big\n" + "big " * 200 + "\n")
    with pytest.raises(ValueError, match="Phrase 2 of that file has 799 characters; a phrase here has at most 500"):
        read_batch(str(tmp_path / "long.txt"))
    mapper, out = WordMapper.from_pretrained(saved_model), tmp_path / "out"
    out.mkdir()
    (tmp_path / "p.txt").write_text("large\n")
    paths = [map_file(mapper, str(tmp_path / "p.txt"), str(out))[0] for _ in range(KEEP_BATCH_OUTPUTS + 3)]
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths[-KEEP_BATCH_OUTPUTS:])


def test_the_batch_csv_neutralises_spreadsheet_formulas(saved_model, tmp_path):
    import csv

    (tmp_path / "p.txt").write_text("=HYPERLINK(\"http://x.test\")\n+cmd|' /C calc'!A0\n-2+3\n@SUM(A1)\nlarge\n")
    (tmp_path / "out").mkdir()
    path, _ = map_file(WordMapper.from_pretrained(saved_model), str(tmp_path / "p.txt"), str(tmp_path / "out"))
    with open(path, newline="") as f:
        phrases = [row[0] for row in csv.reader(f)][1:]
    assert phrases == ["'=HYPERLINK(\"http://x.test\")", "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)", "large"]


@pytest.mark.parametrize("content", ["[1, 2]", "{bad", "\x00\x01"])
def test_a_bad_results_file_does_not_stop_the_page(saved_model, content):
    (saved_model / "all_results.json").write_text(content)
    text, pictures = model_summary(WordMapper.from_pretrained(saved_model))
    assert "**3 output words**" in text and "all\\_results\\.json could not be read" in text and pictures == []


def test_the_space_escapes_its_title_and_keeps_a_folder_of_other_files(saved_model, tmp_path):
    import ast

    title = 'x"+__import__("os").getcwd()+"y my "best" model'
    app = write_space(str(saved_model), str(tmp_path / "space"), title)
    tree = ast.parse(open(app).read())
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert title in strings and not any(isinstance(node, ast.Attribute) and node.attr == "getcwd"
                                        for node in ast.walk(tree))
    assert f"title: {json.dumps(title)}" in (tmp_path / "space" / "README.md").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "app.py").write_text("my app\n")
    with pytest.raises(FileExistsError, match="--space .*mine: the folder is not empty .* pass --overwrite"):
        write_space(str(saved_model), str(tmp_path / "mine"), "t")
    assert (tmp_path / "mine" / "app.py").read_text() == "my app\n"


@pytest.mark.slow
def test_the_space_runs_with_transformers_alone_and_answers_like_predict(saved_model, tmp_path):
    pytest.importorskip("gradio")
    from hf_bertmap.cli import main

    main(["demo", str(saved_model), "--space", str(tmp_path / "space")])
    assert sorted(p.name for p in (tmp_path / "space").iterdir()) == ["README.md", "app.py", "requirements.txt"]
    assert "sdk: gradio" in (tmp_path / "space" / "README.md").read_text()
    code = block_hf_bertmap_code() + (
        "import json, runpy\n"
        f"app = runpy.run_path({str(tmp_path / 'space' / 'app.py')!r}, run_name='space')\n"
        "print('RESULT ' + json.dumps([app['answer']('large'), app['answer']('')]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(subprocess_env(tmp_path), GRADIO_ANALYTICS_ENABLED="False"),
                            stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    (words, _), (empty, message) = json.loads(line[7:])
    expected = WordMapper.from_pretrained(saved_model).predict("large", top_k=5)
    assert list(words) == [w for w, _ in expected] and empty == {} and message == "Type a phrase first."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("CI"):
            pytest.fail("the browser test needs Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page_server(saved_model, tmp_path):
    """`bertmap demo` on the tiny model, served on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    env = dict(subprocess_env(tmp_path), GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen([sys.executable, "-m", "hf_bertmap.cli", "demo", str(saved_model), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()[-3000:]
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_the_page_maps_a_phrase_explains_it_and_takes_a_correction(saved_model, page_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(page_server)

    def text_of(element_id: str) -> str:
        return browser.find_element(By.ID, element_id).text

    def correct(word: str) -> None:
        box = browser.find_element(By.CSS_SELECTOR, "#right-word textarea")
        box.clear()
        box.send_keys(word)
        browser.find_element(By.ID, "correct").click()

    phrase = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#phrase textarea"))
    browser.find_element(By.ID, "map").click()
    wait.until(lambda d: "Type a phrase first" in text_of("why"))

    expected = WordMapper.from_pretrained(saved_model).predict("very large", top_k=3)
    phrase.send_keys("very large")
    browser.find_element(By.ID, "map").click()
    wait.until(lambda d: expected[0][0] in text_of("words") and "from the classifier" in text_of("why"))

    correct("nonsense")
    wait.until(lambda d: "is not an output word" in text_of("message"))
    right = [word for word in ("height", "size", "smell") if word != expected[0][0]][0]
    correct(right)
    wait.until(lambda d: "now maps to" in text_of("message"))
    wait.until(lambda d: text_of("words").splitlines()[1:2] == [right] and "stored phrase" in text_of("why"))
    browser.save_screenshot(str(tmp_path / "demo.png"))
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert WordMapper.from_pretrained(saved_model).predict("very large") == [(right, 1.0)]  # saved in the model

    phrase.clear()
    phrase.send_keys("quite big")
    browser.find_element(By.CSS_SELECTOR, "#add-word input").click()
    correct(HOSTILE[0])  # a word that is an image in Markdown
    wait.until(lambda d: "now maps to" in text_of("message") and HOSTILE[0] in text_of("why"))
    for element_id in ("message", "why"):
        html = browser.find_element(By.ID, element_id).get_attribute("innerHTML")
        assert "<img" not in html and "<a " not in html and HOSTILE[0] in text_of(element_id)


@pytest.mark.slow
def test_several_clients_answering_and_correcting_leave_a_folder_with_every_correction(saved_model, page_server):
    from gradio_client import Client

    errors = []

    def client(n: int) -> None:
        try:
            c = Client(page_server, verbose=False)
            for i in range(6):
                c.predict(phrase=f"big {n}", api_name="/answer")
                message = c.predict(phrase=f"phrase {n} {i}", word=f"w{n}x{i}" if i % 2 else "size",
                                    add_word=True, api_name="/correct")[2]
                assert "now maps to" in message, message
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(repr(err))

    import threading

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    mapper = WordMapper.from_pretrained(saved_model)
    phrases = [f"phrase {n} {i}" for n in range(3) for i in range(6)]
    assert mapper.predict(phrases) == [[(f"w{n}x{i}" if i % 2 else "size", 1.0)] for n in range(3) for i in range(6)]
    assert len((saved_model / "corrections.tsv").read_text().splitlines()) == 1 + len(phrases)


def test_the_batch_tab_maps_a_file_like_predict_and_the_model_tab_lists_words_and_metrics(saved_model, tmp_path):
    import csv

    mapper = WordMapper.from_pretrained(saved_model)
    (tmp_path / "p.tsv").write_text("phrase\tnote\nlarge\tx\nfishy\ty\n")
    (tmp_path / "out").mkdir()
    path, message = map_file(mapper, str(tmp_path / "p.tsv"), str(tmp_path / "out"))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    expected = mapper.predict(["large", "fishy"])
    assert rows == [["phrase", "word", "score"]] + [[p, w, str(s)] for p, [(w, s)] in zip(["large", "fishy"], expected)]
    assert message == "✅ 2 phrases mapped."
    (saved_model / "all_results.json").write_text(json.dumps({"test_accuracy": 0.5, "train_loss": 1.0}))
    text, pictures = model_summary(WordMapper.from_pretrained(saved_model))
    assert "**3 output words**: height, size, smell" in text and "| accuracy | 0.5000 |" in text and pictures == []
