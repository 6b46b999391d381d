"""Checks the web directory's pages in headless Chromium, as people meet them.

For every page given: axe-core (the copy bundled by the axe-playwright-python
package) with the WCAG 2.0/2.1/2.2 A and AA rules at desktop width, at 360 px
and at 200 % zoom; no sideways scrolling at 360 px or 200 % zoom; a screenshot
of each. On the search page: the skip link comes first, search works with the
keyboard alone, and the focused control shows a focus outline.

Driven by services/gateway/tests/browser.rs; prints one JSON report and exits 1
when anything fails.
"""

import argparse
import json
import pathlib
import sys

import axe_playwright_python
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.keys import Keys

AXE_SOURCE = (pathlib.Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

# (label, CSS width, device scale): 200 % zoom of a 1280 px window lays the
# page out in 640 CSS pixels.
VIEWS = [("desktop", 1280, 1), ("narrow-360", 360, 2), ("zoom-200", 640, 2)]

# What only the gateway's error pages say.
ERROR_SIGNS = ["Sorry, something went wrong", "not available just now"]


def driver(chromium, chromedriver):
    options = Options()
    options.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def set_view(browser, width, scale):
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": scale, "mobile": False},
    )


def run_axe(browser):
    browser.execute_script(AXE_SOURCE)
    script = (
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: %s}, resultTypes: ['violations']})"
        ".then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify([{id: 'axe-error', help: String(e), nodes: []}])));"
        % json.dumps(WCAG_TAGS)
    )
    browser.set_script_timeout(60)
    violations = json.loads(browser.execute_async_script(script))
    return [
        {
            "rule": v["id"],
            "impact": v.get("impact"),
            "help": v.get("help"),
            "where": [n.get("target") for n in v.get("nodes", [])][:5],
        }
        for v in violations
    ]


def sideways_scroll(browser):
    return browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
    )


def check_axe_finds_problems(browser):
    """axe itself, on a page with two known faults: a passing run means something."""
    browser.get("data:text/html,<html><body><img src='x.png'><input id='a'></body></html>")
    found = {v["rule"] for v in run_axe(browser)}
    missing = {"image-alt", "html-has-lang"} - found
    if missing:
        return [{"axe": f"axe did not report {sorted(missing)} on a page made to fail", "found": sorted(found)}]
    return []


def check_pages(browser, base, pages, shots):
    failures = []
    checked = []
    for page in pages:
        for label, width, scale in VIEWS:
            set_view(browser, width, scale)
            browser.get(base + page["path"])
            title = browser.title
            violations = run_axe(browser)
            overflow = sideways_scroll(browser)
            shot = shots / f"{page['name']}-{label}.png"
            browser.save_screenshot(str(shot))
            heading = [h.text for h in browser.find_elements("tag name", "h1")]
            text = browser.find_element("tag name", "body").text
            checked.append({"page": page["name"], "view": label, "title": title, "h1": heading, "screenshot": str(shot)})
            # The page's real content, not an error page that looks just as tidy.
            if heading != [page["h1"]]:
                failures.append({"page": page["name"], "view": label, "h1": heading, "expected": page["h1"]})
            if page["shows"].lower() not in text.lower():
                failures.append({"page": page["name"], "view": label, "missing_text": page["shows"]})
            for sign in ERROR_SIGNS:
                if sign in text and page["name"] != "not-found":
                    failures.append({"page": page["name"], "view": label, "error_page": sign})
            if violations:
                failures.append({"page": page["name"], "view": label, "axe": violations})
            if label != "desktop" and overflow > 1:
                failures.append({"page": page["name"], "view": label, "sideways_scroll_px": overflow})
    return checked, failures


def check_keyboard(browser, base, words):
    """Skip link first; the search box reached and used with keys alone."""
    failures = []
    set_view(browser, 1280, 1)
    browser.get(base + "/")
    body = browser.find_element("tag name", "body")
    body.send_keys(Keys.TAB)
    first = browser.switch_to.active_element
    if "skip" not in (first.get_attribute("class") or ""):
        failures.append({"keyboard": "the first Tab does not reach the skip link", "got": first.get_attribute("outerHTML")[:200]})
    outline = browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle;")
    if outline in ("none", ""):
        failures.append({"keyboard": "the focused skip link shows no focus outline"})
    reached = False
    for _ in range(15):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element.get_attribute("id") == "q":
            reached = True
            break
    if not reached:
        failures.append({"keyboard": "the search box is not reached with Tab"})
        return failures
    box = browser.switch_to.active_element
    box.send_keys(words)
    box.send_keys(Keys.ENTER)
    if "q=" not in browser.current_url or "found</h2>" not in browser.page_source:
        failures.append({"keyboard": "Enter in the search box did not search", "url": browser.current_url})
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--pages", required=True, help="JSON list of {name, path}")
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--search-words", default="support")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    shots = pathlib.Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    browser = driver(args.chromium, args.chromedriver)
    try:
        failures = check_axe_finds_problems(browser)
        checked, page_failures = check_pages(browser, args.base, json.loads(args.pages), shots)
        failures += page_failures
        failures += check_keyboard(browser, args.base, args.search_words)
    finally:
        browser.quit()
    print(json.dumps({"checked": checked, "failures": failures}, indent=1))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
