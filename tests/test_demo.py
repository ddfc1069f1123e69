"""The demo page: its messages for bad input, the Space it writes, and the page itself in a real browser (Debian's
chromium and chromedriver, driven by selenium)."""

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
from hf_bertmap.demo import MAX_BATCH_PHRASES, check_phrase, read_batch


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
    import json

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


def test_the_page_maps_a_phrase_explains_it_and_takes_a_correction(saved_model, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

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
        wait = WebDriverWait(browser, 60)
        browser.get(url)

        def text_of(element_id: str) -> str:
            return browser.find_element(By.ID, element_id).text

        phrase = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#phrase textarea"))
        browser.find_element(By.ID, "map").click()
        wait.until(lambda d: "Type a phrase first" in text_of("why"))

        expected = WordMapper.from_pretrained(saved_model).predict("very large", top_k=3)
        phrase.send_keys("very large")
        browser.find_element(By.ID, "map").click()
        wait.until(lambda d: expected[0][0] in text_of("words") and "from the classifier" in text_of("why"))

        browser.find_element(By.CSS_SELECTOR, "#right-word textarea").send_keys("nonsense")
        browser.find_element(By.ID, "correct").click()
        wait.until(lambda d: "is not an output word" in text_of("message"))

        right = [word for word in ("height", "size", "smell") if word != expected[0][0]][0]
        box = browser.find_element(By.CSS_SELECTOR, "#right-word textarea")
        box.clear()
        box.send_keys(right)
        browser.find_element(By.ID, "correct").click()
        wait.until(lambda d: "now maps to" in text_of("message"))
        wait.until(lambda d: text_of("words").splitlines()[1:2] == [right] and "stored phrase" in text_of("why"))
        browser.save_screenshot(str(tmp_path / "demo.png"))
        assert (tmp_path / "demo.png").stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert WordMapper.from_pretrained(saved_model).predict("very large") == [(right, 1.0)]  # kept in corrections.tsv


def test_the_batch_tab_maps_a_file_like_predict_and_the_model_tab_lists_words_and_metrics(saved_model, tmp_path):
    import csv
    import json

    from hf_bertmap.demo import map_file, model_summary

    mapper = WordMapper.from_pretrained(saved_model)
    (tmp_path / "p.tsv").write_text("phrase\tnote\nlarge\tx\nfishy\ty\n")
    path, message = map_file(mapper, str(tmp_path / "p.tsv"))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    expected = mapper.predict(["large", "fishy"])
    assert rows == [["phrase", "word", "score"]] + [[p, w, str(s)] for p, [(w, s)] in zip(["large", "fishy"], expected)]
    assert message == "✅ 2 phrases mapped."
    (saved_model / "all_results.json").write_text(json.dumps({"test_accuracy": 0.5, "train_loss": 1.0}))
    text, pictures = model_summary(WordMapper.from_pretrained(saved_model))
    assert "**3 output words**: height, size, smell" in text and "| accuracy | 0.5000 |" in text and pictures == []
