"""Open built book pages in offline headless Chromium and say what a reader would see wrong.

``facts(driver, url)`` reads a page after MathJax has typeset it and its images have loaded;
``problems(facts)`` turns those facts into the reader-facing faults, so the rules can be tested on
handmade facts and on handmade pages alike.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

# No network at all: besides the sandbox and GPU switches (root, no display), Chromium otherwise
# calls Google hosts in the background, and a page must not load anything from a CDN either.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND",
)
INSTALL_HINT = ("headless Chromium is not installed: scripts/setup.sh installs the Debian packages "
                "chromium and chromium-driver where apt-get runs as root; elsewhere run "
                "`sudo apt-get install chromium chromium-driver` (or put chromium and chromedriver on PATH)")

RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{")
# What an nbval check cell prints (cwl_lib.checks): a reference's tolerance and "ok", "FAIL, ...", or, under
# parameters without references, "not checked: no reference": lines for the test, not for the reader.
CHECK_LINE = re.compile(r"^.+: (?:.+ (?:exact|± \S+(?: rel\.)?(?: \+ \S+ rel\.)?)|below \S+)? ?ok$"
                        r"|^.+: FAIL, |not checked: no reference", re.M)
SCREEN = (1280, 900)  # the reader's first screen: the intro's verdict box must fit in it
# An image's alt text that only repeats its file name (what myst-nb writes when a cell gives none).
FILE_NAME_ALT = re.compile(r"\.(?:png|jpe?g|svg|gif)$", re.I)
REPR = re.compile(r"\bnp\.(?:float|int|uint|complex|bool|str)_?\d*\(|(?<![\w.])tensor\(|(?<![\w.])array\(")
PROGRESS_BAR = re.compile(r"\d+%\|[█▏▎▍▌▋▊▉#\s]*\|")
TRACEBACK = re.compile(r"\bTraceback\b")

# Waits for MathJax (when the page loads it) and for every image, at most 20 s, then reports.
# Code sources are hidden before the text is read: `torch.tensor(` in a code cell is code, the
# same words in an output or in prose are a repr that reached the page.
_FACTS_JS = r"""
const done = arguments[arguments.length - 1];
// MathJax's script may still be loading when the page has (on a busy machine): wait for it, up to 10 s
const wantsMathJax = !!document.querySelector('script[src*="mathjax"]');
const started = Date.now();
const mathjaxReady = new Promise(r => (function poll() {
  const mj = window.MathJax;
  if (!wantsMathJax || (mj && mj.startup && mj.startup.promise) || Date.now() - started > 10000) r();
  else setTimeout(poll, 100);
})());
const typeset = mathjaxReady.then(() => {
  const mj = window.MathJax;
  return (mj && mj.startup && mj.startup.promise) ? mj.startup.promise : null;
});
const images = Array.from(document.images);
images.forEach(i => { i.loading = "eager"; });
const loaded = Promise.all(images.map(i => i.complete ? null :
    new Promise(r => { i.addEventListener("load", r); i.addEventListener("error", r); })));
const timeout = new Promise(r => setTimeout(r, 20000));
Promise.race([Promise.all([typeset, loaded]).catch(() => null), timeout]).then(() => {
  try { report(); } catch (err) { done({url: location.href, error: String(err)}); }
});
function report() {
  const mj = window.MathJax;
  const math = Array.from(document.querySelectorAll(".math"));
  // a redirecting page (index.html) may have no body left to measure
  const article = document.querySelector("article.bd-article") || document.body || document.documentElement;
  // the text column: the article's content box, where paragraphs wrap
  const style = getComputedStyle(article);
  const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const where = e => { const s = e.closest("section[id]"); return s ? "#" + s.id : "(top)"; };
  const wide = Array.from(article.querySelectorAll("table"))
    .filter(t => !t.closest(".tag_full-width, .full-width") && t.getBoundingClientRect().width > column + 1)
    .map(t => `${where(t)}: ${Math.round(t.getBoundingClientRect().width)} px in a ${Math.round(column)} px column`);
  const pictures = Array.from(article.querySelectorAll("img"));
  const box = document.getElementById("verdict-box");
  const rect = box ? box.getBoundingClientRect() : null;
  document.querySelectorAll(".cell_input").forEach(e => { e.style.display = "none"; });
  done({
    url: location.href,
    math: math.length,
    math_typeset: math.filter(e => e.querySelector("mjx-container")).length,
    mjx: document.querySelectorAll("mjx-container").length,
    mathjax_loaded: !!(mj && mj.startup),
    images: images.length,
    broken_images: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    text: document.body ? document.body.innerText : "",
    wide_tables: wide,
    pictures: pictures.map(i => [i.getAttribute("src") || "", i.getAttribute("alt") || ""]),
    verdict_box: rect ? {top: rect.top, bottom: rect.bottom, lines: box.querySelectorAll(".verdict-line").length,
                         links: Array.from(box.querySelectorAll("a")).map(a => a.href)} : null,
    viewport: [window.innerWidth, window.innerHeight],
  });
}
"""


def chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when either is missing."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start(browser: str, driver: str, profile_dir: Path):
    """A headless Chromium with no network, driven by the system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager would otherwise try to download drivers and report usage.
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    # the page's viewport, not the window (whose frame takes some of it), is the reader's screen
    session.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": SCREEN[0], "height": SCREEN[1], "deviceScaleFactor": 1, "mobile": False})
    session.set_script_timeout(30)
    session.set_page_load_timeout(30)
    return session


def facts(session, url: str) -> dict:
    session.get(url)
    found = session.execute_async_script(_FACTS_JS)
    if "error" in found:
        raise RuntimeError(f"{url}: reading the page failed: {found['error']}")
    return found


def problems(page: dict) -> list[str]:
    """Everything wrong with one page, as sentences naming the page; empty when it reads clean."""
    where, text, out = page["url"], page["text"], []
    if page["math"] and not page["mathjax_loaded"]:
        out.append(f"{where}: has {page['math']} formulas but MathJax did not load")
    elif page["math_typeset"] < page["math"]:
        out.append(f"{where}: {page['math'] - page['math_typeset']} of {page['math']} formulas not typeset")
    for name, rule in (("raw TeX", RAW_TEX), ("a numpy or torch repr", REPR),
                       ("a progress-bar dump", PROGRESS_BAR), ("a traceback", TRACEBACK),
                       ("a check line of nbval", CHECK_LINE)):
        hits = [_line_at(text, m.start()) for m in rule.finditer(text)]
        if hits:
            out.append(f"{where}: {name} in the text ({len(hits)}x), first: {hits[0]!r}")
    out += [f"{where}: image not loaded: {src}" for src in page["broken_images"]]
    out += [f"{where}: table wider than its column, {wide}" for wide in page.get("wide_tables", [])]
    out += [f"{where}: figure without alt text: {src}" for src, alt in page.get("pictures", [])
            if not alt.strip() or alt == src or FILE_NAME_ALT.search(alt.strip())]
    return out


def first_screen(page: dict) -> list[str]:
    """What keeps the verdict box from being read whole on the first screen of ``page`` (empty: it is)."""
    box, (width, height) = page.get("verdict_box"), page["viewport"]
    if (width, height) != SCREEN:
        return [f"{page['url']}: the screen is {width} x {height}, not {SCREEN[0]} x {SCREEN[1]}"]
    if box is None:
        return [f"{page['url']}: no verdict box"]
    if box["top"] < 0 or box["bottom"] > height:
        return [f"{page['url']}: the verdict box spans {box['top']:.0f}-{box['bottom']:.0f} px of a {height} px screen"]
    return []


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start:end if end >= 0 else None].strip()[:120]


def pages(html_dir: Path) -> list[Path]:
    """Every page of a built book (not the copied sources or theme files)."""
    return sorted(p for p in html_dir.rglob("*.html") if not p.relative_to(html_dir).parts[0].startswith("_"))
