"""emoclf serve: the HTTP server on a free local port, and the page in a real headless Chromium."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import CLASSES
from PIL import Image
from skimage import data as skimage_data

from emoclf.cli.app import build_parser, main
from emoclf.inference import face
from emoclf.serve import service as service_module
from emoclf.serve.server import is_loopback, make_server
from emoclf.serve.service import Service, UploadTooLarge

# Debian's packages (apt-get install chromium chromium-driver); nothing is downloaded.
CHROMIUM = os.environ.get("EMOCLF_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EMOCLF_CHROMEDRIVER", "/usr/bin/chromedriver")
# This machine's network is closed: no sandbox (root in CI), no GPU, and nothing that phones home.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # a test-pattern webcam


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("astro") / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def server(runs):
    """The server of an RGB and a grayscale run, on a free port of 127.0.0.1, serving in a thread."""
    service = Service([runs.rgb, runs.cnn], runs.out, "cpu")
    srv = make_server(service, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    service.close()


def request(srv, method: str, path: str, body: bytes = None, headers: dict = None):
    """(status, decoded JSON or text) of one request to ``srv``."""
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw, kind = resp.read(), resp.getheader("Content-Type", "")
        if kind.startswith("image/"):
            return resp.status, raw
        return resp.status, json.loads(raw) if kind.startswith("application/json") else raw.decode("utf-8")
    finally:
        conn.close()


def post_photo(srv, data: bytes, **query):
    return request(srv, "POST", "/api/predict?" + urlencode(query), data)


def cli_record(capsys, photo: Path, run: Path, *extra) -> dict:
    assert main(["predict", str(photo), "--run", str(run), "--json", "--no-figure", *extra]) == 0
    rec, = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return rec


@pytest.mark.parametrize("face_name", face.FACE_NAMES)
def test_the_page_scores_as_predict_json(server, runs, astronaut, capsys, face_name):
    """Every face option of FACE_NAMES gives the record of emoclf predict --json --face NAME on the same photo."""
    run = runs.cnn if face_name == "none" else runs.rgb  # grayscale and RGB
    expected = cli_record(capsys, astronaut, run, *([] if face_name == "none" else ["--face", face_name]))
    status, got = post_photo(server, astronaut.read_bytes(), run=str(run), face=face_name, name="astronaut.jpg")
    assert status == 200, got
    rec = got["record"]
    assert rec["image"] == "astronaut.jpg"  # the upload's name, never the temporary file
    assert {k: v for k, v in rec.items() if k != "image"} == {k: v for k, v in expected.items() if k != "image"}
    assert got["classes"] == list(expected["scores"])
    assert len(got["items"]) == max(1, len(expected["faces"]))
    assert all(i["input"].startswith("data:image/png;base64,") for i in got["items"])
    if face_name == "none":
        assert rec["faces"] == [] and got["items"][0]["crop"] is None
    else:
        assert len(expected["faces"]) >= 1  # her face is found: the comparison is about faces
        assert [i["box"] for i in got["items"]] == [f["box"] for f in expected["faces"]]
        assert all(i["crop"].startswith("data:image/png;base64,") for i in got["items"])


def test_gradcam_on_request(server, runs, astronaut):
    status, got = post_photo(server, astronaut.read_bytes(), run=str(runs.rgb), face="haar", gradcam="1")
    assert status == 200, got
    assert all(i["gradcam"].startswith("data:image/png;base64,") for i in got["items"])
    assert "Grad-CAM on layer" in got["gradcam_note"]
    status, got = post_photo(server, astronaut.read_bytes(), run=str(runs.rgb), face="haar")
    assert all(i["gradcam"] is None for i in got["items"])


def test_face_options_are_read_at_each_request(server, runs, astronaut, monkeypatch):
    """A detector added to FACE_NAMES and make_detector appears on the page with no change to the server."""
    class Fixed:
        def detect(self, img):
            return [(10, 20, 100, 120)]

    made = face.make_detector
    monkeypatch.setattr(face, "FACE_NAMES", face.FACE_NAMES + ("fixed",))
    monkeypatch.setattr(face, "make_detector", lambda name, **kw: Fixed() if name == "fixed" else made(name, **kw))
    status, options = request(server, "GET", "/api/options")
    assert status == 200 and "fixed" in options["faces"] and options["face"] == "haar"
    assert [r["id"] for r in options["runs"]] == [str(runs.rgb), str(runs.cnn)]
    status, got = post_photo(server, astronaut.read_bytes(), run=str(runs.rgb), face="fixed")
    assert status == 200 and [f["box"] for f in got["record"]["faces"]] == [[10, 20, 100, 120]]
    status, got = post_photo(server, astronaut.read_bytes(), run=str(runs.rgb), face="retina")
    assert status == 400 and "Unknown face option 'retina'" in got["error"] and "fixed" in got["error"]


def test_bad_requests_get_a_message_and_the_server_keeps_serving(server, runs, astronaut):
    bad = [post_photo(server, b"this is not a photo", run=str(runs.rgb), face="haar", name="notes.jpg"),
           post_photo(server, b"", run=str(runs.rgb), face="none"),
           post_photo(server, astronaut.read_bytes()[:3000], run=str(runs.rgb), face="none", name="cut.jpg"),
           post_photo(server, astronaut.read_bytes(), run="/etc", face="none"),
           request(server, "POST", "/api/predict", b"x", {"Content-Length": "many"}),
           request(server, "POST", "/", b"x"),
           request(server, "GET", "/comparison/file/..%2F..%2Fetc%2Fpasswd"),
           request(server, "GET", "/nothing-here")]
    assert [status for status, _ in bad] == [400, 400, 400, 400, 400, 404, 404, 404]
    messages = [got["error"] for _, got in bad]
    assert "notes.jpg cannot be read as an image" in messages[0] and "Upload a photo" in messages[0]
    assert "empty" in messages[1] and "cut.jpg cannot be read" in messages[2]
    assert "Unknown run '/etc'" in messages[3] and str(runs.rgb) in messages[3]
    assert not any("Traceback" in m for m in messages)
    with socket.create_connection(server.server_address[:2], timeout=10) as raw:  # not HTTP at all
        raw.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        answer = b"".join(iter(lambda: raw.recv(4096), b""))
        assert b"Error code: 400" in answer  # http.server's own answer, then it closes the connection
    status, got = post_photo(server, astronaut.read_bytes(), run=str(runs.rgb), face="haar")
    assert status == 200 and got["record"]["faces"]


def test_uploads_are_size_limited_and_kept_in_a_temporary_folder(server, runs, astronaut, monkeypatch):
    folder = Path(server.service.folder.name)
    assert folder.is_dir() and folder.resolve().parent == Path(tempfile.gettempdir()).resolve()
    monkeypatch.setattr(service_module, "MAX_UPLOAD_BYTES", 10_000)
    photo = astronaut.read_bytes()
    status, got = post_photo(server, photo, run=str(runs.rgb), face="none")
    assert status == 413
    assert got["error"] == f"The file is {len(photo) / 1024:.0f} kB; the page takes photos up to 10 kB. Upload a " \
                           f"smaller photo."
    with pytest.raises(UploadTooLarge):
        server.service.predict(b"x" * 10_001, "big.jpg", str(runs.rgb), "none")
    monkeypatch.undo()
    assert post_photo(server, astronaut.read_bytes(), run=str(runs.rgb), face="none")[0] == 200
    assert list(folder.iterdir()) == []  # each upload is removed once answered


def test_bound_to_this_machine_by_default(server, runs):
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "localhost", "::1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.20", "::", "example.com"]))
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 7860)
    assert server.server_address[0] == "127.0.0.1"
    status, got = request(server, "GET", "/api/options", headers={"Host": "evil.example:7860"})
    assert status == 403 and "127.0.0.1" in got["error"]
    assert request(server, "GET", "/", headers={"Host": "localhost:7860"})[0] == 200


@contextlib.contextmanager
def serving(service: Service):
    """``service`` on a free port of 127.0.0.1 for the ``with`` block; closed after."""
    srv = make_server(service, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        service.close()


def test_the_runs_offered_and_the_comparison_page(runs, tmp_path):
    """Every finished run under --runs-dir, the best of the latest comparison first; its table and figures."""
    outputs = tmp_path / "outputs"
    for age, run in ((100, runs.rgb), (0, runs.cnn)):  # cnn the newest
        shutil.copytree(run, outputs / run.name)
        os.utime(outputs / run.name / "metrics.json", (1e9 - age, 1e9 - age))
    with serving(Service(runs_dir=outputs, device="cpu")) as srv:
        assert [r["id"] for r in srv.service.runs()] == [str(outputs / "cnn"), str(outputs / "cnn_rgb")]
        status, page = request(srv, "GET", "/comparison")
        assert status == 200 and "No comparison under" in page and "emoclf compare" in page

        folder = outputs / "comparison"
        folder.mkdir()
        rows = [{"run": name, "model": "cnn", "accuracy": acc, "f1_macro": acc, "num_params": 1234}
                for name, acc in (("cnn", 0.25), ("cnn_rgb", 0.75))]
        (folder / "comparison.json").write_text(json.dumps({
            "best": {"run": "cnn_rgb", "run_dir": str(outputs / "cnn_rgb"), "f1_macro": 0.75}, "runs": rows,
            "warnings": ["a <b>warning</b>"], "figures": ["metrics.png"], "device": "cpu"}))
        (folder / "comparison.md").write_text("# Model comparison\n")
        Image.new("RGB", (20, 10), "red").save(folder / "metrics.png")
        listed = srv.service.runs()
        assert [r["id"] for r in listed] == [str(outputs / "cnn_rgb"), str(outputs / "cnn")]
        assert "best run of" in listed[0]["why"]

        status, page = request(srv, "GET", "/comparison")
        assert status == 200 and "<tr class=best><td>cnn_rgb</td><td>cnn</td>" in page
        assert "<td>75.00%</td>" in page and "<td>1,234</td>" in page  # formatted as in comparison.md
        assert "a &lt;b&gt;warning&lt;/b&gt;" in page and 'src="/comparison/file/metrics.png"' in page
        status, png = request(srv, "GET", "/comparison/file/metrics.png")
        assert status == 200 and png.startswith(b"\x89PNG")
        assert request(srv, "GET", "/comparison/file/comparison.md") == (200, "# Model comparison\n")
        assert request(srv, "GET", "/comparison/file/comparison.json")[0] == 404  # only figures and the page
        assert request(srv, "GET", "/comparison/file/%2E%2E%2Fcnn%2Fbest.pt")[0] == 404


@pytest.mark.slow
def test_the_comparison_page_of_a_real_comparison(runs, tmp_path):
    from emoclf.comparison.compare import compare_runs

    summary = compare_runs([runs.cnn, runs.rgb], tmp_path / "comparison", "cpu")
    with serving(Service([runs.cnn], tmp_path, "cpu")) as srv:
        status, page = request(srv, "GET", "/comparison")
        assert status == 200 and f'<b id="best">{summary["best"]["run"]}</b>' in page
        assert summary["figures"] and all(f'src="/comparison/file/{name}"' in page for name in summary["figures"])
        assert all(request(srv, "GET", f"/comparison/file/{name}")[0] == 200 for name in summary["figures"])


def test_serve_command_errors(runs, tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "No such run folder or checkpoint" in capsys.readouterr().err
    assert main(["serve", "--runs-dir", str(tmp_path)]) == 2
    assert "No finished run under" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--port", "70000"])


@pytest.mark.skipif(os.name == "nt", reason="stops the server with SIGINT, as Ctrl+C does")
def test_serve_command_serves_until_ctrl_c(runs):
    """The command itself: it prints where it listens (127.0.0.1), answers, and stops cleanly on Ctrl+C."""
    proc = subprocess.Popen([sys.executable, "-m", "emoclf", "serve", str(runs.cnn), "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        seen = []
        while not any("Serving on" in line for line in seen):
            seen.append(lines.get(timeout=60))
        url = seen[-1].split("Serving on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        conn = http.client.HTTPConnection(url[len("http://"):].rstrip("/"), timeout=30)
        conn.request("GET", "/api/options")
        options = json.loads(conn.getresponse().read())
        conn.close()
        assert [r["id"] for r in options["runs"]] == [str(runs.cnn)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert "Stopped." in "".join(rest) and "Traceback" not in "".join(seen + rest)


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium driven by Selenium through Debian's chromedriver, with a new empty profile."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(f"No Chromium browser at {CHROMIUM} with {CHROMEDRIVER}: install it with "
                    f"apt-get install chromium chromium-driver (.ci/run does).")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    """A screenshot under the test's folder and, when EMOCLF_TEST_ARTIFACTS names a folder, there too."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    if os.environ.get("EMOCLF_TEST_ARTIFACTS"):
        folder = Path(os.environ["EMOCLF_TEST_ARTIFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
    return path


def test_in_a_browser_the_page_shows_the_winner_and_faces_of_predict(server, runs, astronaut, browser, capsys,
                                                                      tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    expected = cli_record(capsys, astronaut, runs.rgb, "--haar")
    host, port = server.server_address[:2]

    def state(d):
        return d.find_element(By.ID, "status").get_attribute("data-state")

    browser.get(f"http://{host}:{port}/")
    WebDriverWait(browser, 30).until(lambda d: state(d) == "idle")
    Select(browser.find_element(By.ID, "run")).select_by_value(str(runs.rgb))
    Select(browser.find_element(By.ID, "face")).select_by_value("haar")
    browser.find_element(By.ID, "file").send_keys(str(astronaut))
    WebDriverWait(browser, 60).until(lambda d: state(d) in ("done", "error"))
    assert state(browser) == "done", browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "winner").text == expected["label"]
    cards = browser.find_elements(By.CSS_SELECTOR, "#cards .face-card")
    assert len(cards) == len(expected["faces"]) >= 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#photo .box")) == len(expected["faces"])
    assert browser.find_element(By.ID, "face-count").text == str(len(expected["faces"]))
    for card, want in zip(cards, expected["faces"]):
        assert card.find_element(By.CSS_SELECTOR, "h3 .label").text == want["label"]
        bars = card.find_elements(By.CSS_SELECTOR, ".bar")
        assert [b.get_attribute("data-class") for b in bars] == list(want["scores"])
        assert card.find_element(By.CSS_SELECTOR, ".bar.win").get_attribute("data-class") == want["label"]
        assert len(card.find_elements(By.CSS_SELECTOR, ".pics img")) == 2  # the crop and the model input

    browser.find_element(By.ID, "gradcam").click()  # asks again, with the heat maps
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cards .pics img")) ==
                                     3 * len(expected["faces"]))
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    assert browser.find_element(By.ID, "winner").text == expected["label"]
    shot = save_screenshot(browser, tmp_path, "serve.png")
    assert Image.open(shot).size[0] > 600

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda d: state(d) == "error")
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "notes.jpg cannot be read as an image" in error.text
    assert "emoclf-serve-" not in error.text  # the temporary file is not the user's business
    assert "Traceback" not in browser.page_source
    save_screenshot(browser, tmp_path, "serve-bad-file.png")


def test_in_a_browser_a_webcam_photo_is_scored(server, browser, tmp_path):
    """Chromium's test-pattern camera: Use the webcam, Take a photo, and the page shows its scores."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    host, port = server.server_address[:2]
    browser.get(f"http://{host}:{port}/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "idle")
    Select(browser.find_element(By.ID, "face")).select_by_value("none")
    browser.find_element(By.ID, "camera").click()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.getElementById('video').videoWidth"))
    browser.find_element(By.ID, "snap").click()
    WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") in ("done", "error"))
    assert browser.find_element(By.ID, "status").get_attribute("data-state") == "done", \
        browser.find_element(By.ID, "error").text
    assert "Scored webcam.jpg" in browser.find_element(By.ID, "status").text
    card, = browser.find_elements(By.CSS_SELECTOR, "#cards .whole-card")  # no face detection: the whole photo
    assert [b.get_attribute("data-class") for b in card.find_elements(By.CSS_SELECTOR, ".bar")] == list(CLASSES)
    winner = card.find_element(By.CSS_SELECTOR, ".bar.win").get_attribute("data-class")
    assert browser.find_element(By.ID, "winner").text == winner
    save_screenshot(browser, tmp_path, "serve-webcam.png")
