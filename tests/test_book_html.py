"""The built book (_build/html) opened in headless Chromium (Debian's `chromium`).

Every page of the book is loaded by the browser through the DevTools protocol; after
it has loaded, the browser's own DOM is asked for:
  - images that did not render (not complete or naturalWidth 0),
  - every link (resolved by the browser) and every element id, and
  - on chapter pages (notebooks/*.html), the figures: img or svg inside the article,
  - tables that need scrolling sideways in a 1300 px wide window (the width the book
    is read at: a result table must show all its columns).
The test fails on a missing image, on a link to a local page or anchor that does not
exist, on a chapter without figures, or on a table wider than the text column. A static
pass also checks that every local img src file exists.

Skipped when _build/html does not exist (a fresh clone before `make book`) or when
chromium is missing, unless BOOK_CHECK_REQUIRED=1 (set by `make check-book`), which
turns both into failures. BOOK_HTML=DIR checks another build (e.g. a broken copy).
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
REQUIRED = os.environ.get("BOOK_CHECK_REQUIRED", "") == "1"
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--remote-debugging-port=0", "about:blank"]
SKIP_PAGES = {"genindex.html", "search.html"}

# Evaluated in the page after load: what the browser rendered.
PROBE = r"""JSON.stringify({
  ready: document.readyState,
  broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                              .map(i => i.getAttribute('src')),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id)
       .concat([...document.querySelectorAll('a[name]')].map(a => a.name)),
  figures: [...document.querySelectorAll('article img, article svg')]
    .filter(e => !e.closest('button, .icon, .copybtn') && !e.classList.contains('icon')).length,
  wide: [...document.querySelectorAll('article table')].filter(t => {
      for (let e = t.parentElement; e && e.tagName !== 'SECTION' && e.tagName !== 'ARTICLE'; e = e.parentElement)
        if (e.scrollWidth > e.clientWidth + 1) return true;
      return false; })
    .map(t => (t.querySelector('th') || t).textContent.trim().slice(0, 30))
})"""
WINDOW = dict(width=1300, height=900)   # px: the width the book must be readable at


def _skip_or_fail(reason):
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


class Browser:
    """Headless chromium with a minimal DevTools-protocol client (one page target)."""

    def __init__(self, exe):
        import websocket
        self.profile = tempfile.mkdtemp(prefix="bookcheck-chromium-")
        self.proc = subprocess.Popen([exe, *CHROME_FLAGS, f"--user-data-dir={self.profile}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            time.sleep(0.1)
        else:
            raise RuntimeError("chromium did not open a DevTools port in 30 s")
        port = int(port_file.read_text().split()[0])
        for _ in range(50):
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expr):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    def probe(self, url):
        self.call("Page.navigate", url=url)
        deadline = time.time() + 30
        while time.time() < deadline:
            time.sleep(0.2)
            if self.evaluate("document.readyState") == "complete" and \
                    self.evaluate("location.href").split("#")[0] == url.split("#")[0]:
                break
        # give images a moment to decode after load
        self.evaluate("Promise.all([...document.images].map(i => i.decode().catch(() => 0)))")
        return json.loads(self.evaluate(PROBE))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def book_pages(html: Path) -> list:
    return sorted(p for p in html.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts
                  and p.name not in SKIP_PAGES)


def static_ids(path: Path) -> set:
    text = path.read_text(errors="replace")
    return set(re.findall(r'\bid="([^"]+)"', text)) | set(re.findall(r'\bname="([^"]+)"', text))


def check_book(html: Path, exe: str) -> list:
    """All problems found in the built book at ``html`` (empty: the book is fine)."""
    problems, seen, links = [], {}, []
    pages = book_pages(html)
    if not pages:
        return [f"{html}: no pages"]
    browser = Browser(exe)
    try:
        browser.call("Emulation.setDeviceMetricsOverride", deviceScaleFactor=1, mobile=False, **WINDOW)
        for page in pages:
            rel = page.relative_to(html).as_posix()
            info = browser.probe(page.as_uri())
            if info["ready"] != "complete":
                problems.append(f"{rel}: did not finish loading")
            seen[page] = set(info["ids"])
            problems += [f"{rel}: image does not render: {src}" for src in info["broken"]]
            links += [(rel, href) for href in info["links"]]
            problems += [f"{rel}: table wider than the text column at {WINDOW['width']} px "
                         f"(first header: {h!r})" for h in info["wide"]]
            if rel.startswith("notebooks/") and info["figures"] == 0:
                problems.append(f"{rel}: chapter without figures (no img or svg)")
            for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', page.read_text(errors="replace")):
                if not re.match(r"^(data:|https?:|//)", src):
                    target = (page.parent / urllib.parse.unquote(src.split("#")[0])).resolve()
                    if not target.exists():
                        problems.append(f"{rel}: img src file missing: {src}")
    finally:
        browser.close()
    for rel, href in links:
        url = urllib.parse.urlparse(href)
        if url.scheme != "file":
            continue                                   # external links are not checked
        target = Path(urllib.parse.unquote(url.path))
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"{rel}: broken link {href}")
            continue
        if url.fragment and target.suffix == ".html":
            ids = seen.get(target) if target in seen else static_ids(target)
            if urllib.parse.unquote(url.fragment) not in ids:
                problems.append(f"{rel}: link to a missing anchor {href}")
    return problems


def test_built_book_renders_in_chromium():
    if not (HTML / "index.html").exists():
        _skip_or_fail(f"{HTML}/index.html does not exist: build the book first (make book)")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        _skip_or_fail("chromium not found (apt-get install -y chromium, or make check-book)")
    problems = check_book(HTML, exe)
    assert not problems, f"{len(problems)} problem(s) in {HTML}:\n" + "\n".join(problems[:50])
