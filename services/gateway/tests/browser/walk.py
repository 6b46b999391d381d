"""A person's walk through the web in headless Chromium, as issue 32 asks:
search -> a group's page -> sign in with the emailed link -> join with
consent -> my groups with the joining details -> the welcome in the inbox ->
how I am told -> an alert by postcode -> my calendar -> download my data ->
erase me -> signed out. Forms are filled and sent with the keyboard. Every
page met is checked with axe-core (WCAG 2.x A and AA) at desktop width, 360 px
and 200 % zoom, for sideways scrolling, and screenshotted; a second person,
signed in beside her, is screenshotted on the same pages of their own.

Driven by services/gateway/tests/browser.rs. The sign-in links come from the
test, which reads them from a real SMTP server: the script prints
{"need": "link", "email": ...} on a line of its own and reads the link from
its input. The last line printed is the JSON report; exit 1 on any failure.
"""

import argparse
import json
import pathlib
import sys
import time
import traceback

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from check_pages import VIEWS, check_axe_finds_problems, driver, run_axe, set_view, sideways_scroll


class Walk:
    def __init__(self, base, shots):
        self.base = base
        self.shots = shots
        self.checked = []
        self.failures = []

    def fail(self, step, **what):
        self.failures.append({"step": step, **what})

    def check(self, browser, name, h1=None, shows=None, who="owner"):
        """The page now open: axe, sideways scrolling and a screenshot in each
        view (laid out again at each width, not reloaded: it may be the answer
        to a form), its heading and text checked."""
        for label, width, scale in VIEWS:
            set_view(browser, width, scale)
            violations = run_axe(browser)
            overflow = sideways_scroll(browser)
            shot = self.shots / f"walk-{name}-{who}-{label}.png"
            browser.save_screenshot(str(shot))
            self.checked.append({"page": name, "who": who, "view": label, "screenshot": str(shot)})
            if violations:
                self.fail(name, view=label, axe=violations)
            if label != "desktop" and overflow > 1:
                self.fail(name, view=label, sideways_scroll_px=overflow)
        set_view(browser, 1280, 1)
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h1")]
        if h1 is not None and h1 not in " ".join(headings):
            self.fail(name, h1=headings, expected=h1)
        text = browser.find_element(By.TAG_NAME, "body").text
        if shows is not None and shows not in text:
            self.fail(name, missing_text=shows)
        if "Sorry, something went wrong" in text:
            self.fail(name, error_page=True)


def need_link(email):
    print(json.dumps({"need": "link", "email": email}), flush=True)
    return sys.stdin.readline().strip()


def wait_replaced(browser, page):
    """Waits for the answer to replace `page` (the old document's root) and
    finish loading. Chromedriver answers a question about a node of a page
    being replaced either "stale" or, at times, with a generic error that
    the node is not in the document: both mean it is gone."""

    def replaced(b):
        try:
            page.is_enabled()
            return False
        except (StaleElementReferenceException, WebDriverException):
            return b.execute_script("return document.readyState") == "complete"

    WebDriverWait(browser, 20).until(replaced)


def press_enter(browser, element):
    """Enter on a link, a box or a button, as someone without a mouse, and
    the answer waited for."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.send_keys(Keys.ENTER)
    wait_replaced(browser, page)


def keyboard_submit(browser, button):
    """Presses a form's button with the keyboard, as someone without a mouse,
    and waits for the answer to replace the page."""
    press_enter(browser, button)


def tick(browser, box):
    if not box.is_selected():
        box.send_keys(Keys.SPACE)


def sign_in(walk, browser, email, check=True):
    browser.get(walk.base + "/sign-in?next=/my/groups")
    if check:
        walk.check(browser, "sign-in", h1="Sign in", shows="no password")
    box = browser.find_element(By.ID, "email")
    box.send_keys(email)
    press_enter(browser, box)
    if check:
        walk.check(browser, "sign-in-sent", h1="Check your email", shows="code")
    link = need_link(email)
    browser.get(link)
    if check:
        walk.check(browser, "sign-in-link", h1="Sign in")
    keyboard_submit(browser, browser.find_element(By.CSS_SELECTOR, "main form button"))
    if "Your account" not in browser.find_element(By.TAG_NAME, "header").text:
        walk.fail(
            "sign-in",
            email=email,
            landed=browser.current_url,
            page=browser.find_element(By.TAG_NAME, "main").text[:300],
        )


def walk_through(walk, ann, bea, args):
    # Search, with the keyboard, then the group's page.
    set_view(ann, 1280, 1)
    ann.get(walk.base + "/")
    box = ann.find_element(By.ID, "q")
    box.send_keys(args.search_words)
    press_enter(ann, box)
    if args.group_name not in ann.page_source:
        walk.fail("search", missing=args.group_name)
        return
    ann.find_element(By.LINK_TEXT, args.group_name).click()
    group_url = ann.current_url
    walk.check(ann, "group-signed-out", h1=args.group_name, shows="Sign in")

    # Sign in with the link from the email; back to her groups.
    sign_in(walk, ann, args.email)
    if "/my/groups" not in ann.current_url:
        walk.fail("sign-in", landed=ann.current_url)

    # Join with consent: first without it (the box is named), then with it.
    ann.get(group_url)
    walk.check(ann, "group-signed-in", h1=args.group_name, shows="Before you join")
    ann.find_element(By.ID, "display_name").send_keys("Ann")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "section.place form.panel button"))
    walk.check(ann, "group-join-error", shows="tick the box")
    tick(ann, ann.find_element(By.ID, "agree"))
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "section.place form.panel button"))
    walk.check(ann, "group-member", h1=args.group_name, shows=args.details)

    # My groups, with the joining details.
    ann.get(walk.base + "/my/groups")
    walk.check(ann, "my-groups", h1="My groups", shows=args.details)

    # The welcome in the inbox.
    deadline = time.time() + 30
    while time.time() < deadline:
        ann.get(walk.base + "/my/notifications")
        if "Welcome" in ann.page_source or "welcome" in ann.page_source:
            break
        time.sleep(0.5)
    walk.check(ann, "notifications", h1="Notifications", shows="unread")
    if "unread" not in ann.find_element(By.ID, "unread-line").text:
        walk.fail("notifications", missing="an unread welcome")

    # How she is told: a daily summary and quiet hours.
    ann.get(walk.base + "/my/settings")
    walk.check(ann, "settings", h1="How you are told", shows="What comes by email")
    tick(ann, ann.find_element(By.ID, "cadence-daily"))
    # Time fields are typed differently in each locale's browser: set them.
    for field, value in [("quiet_start", "22:00"), ("quiet_end", "07:00")]:
        ann.execute_script("arguments[0].value = arguments[1];", ann.find_element(By.ID, field), value)
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "main form.panel > button"))
    walk.check(ann, "settings-saved", h1="How you are told", shows="Your settings are saved.")

    # An alert by postcode: a wrong one is named; then a right one kept.
    ann.get(walk.base + "/my/alerts")
    walk.check(ann, "alerts", h1="Alerts about new groups", shows="New alert")
    postcode = ann.find_element(By.ID, "postcode")
    postcode.send_keys("ZZ99 9ZZ")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "main form.panel > button"))
    walk.check(ann, "alerts-error", shows="postcode we know")
    postcode = ann.find_element(By.ID, "postcode")
    postcode.clear()
    postcode.send_keys("NG1 5FS")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "main form.panel > button"))
    walk.check(ann, "alerts-kept", h1="Alerts about new groups", shows="within 10 km of NG1 5FS")

    # Her private calendar.
    ann.get(walk.base + "/my/calendar")
    walk.check(ann, "calendar", h1="My calendar")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "main form button"))
    if "/calendars/" not in ann.page_source:
        walk.fail("calendar", missing="the address")

    # My data: the download holds every service's part.
    ann.get(walk.base + "/my/data")
    walk.check(ann, "my-data", h1="My data", shows="Erase me")
    download = ann.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/my/data/download').then(r => r.json()).then(d => done(d), e => done({error: String(e)}));"
    )
    for part in ["web", "listings", "membership", "notifications"]:
        if part not in download:
            walk.fail("download", missing=part)
    if download.get("web", {}).get("sign_in_address") != args.email:
        walk.fail("download", web=download.get("web"))

    # Bea, signed in beside her, on the same pages: her own.
    sign_in(walk, bea, "bea@example.org", check=False)
    for path, name, h1 in [
        ("/my/groups", "my-groups", "My groups"),
        ("/my/notifications", "notifications", "Notifications"),
        ("/my/settings", "settings", "How you are told"),
        ("/my/alerts", "alerts", "Alerts about new groups"),
        ("/my/data", "my-data", "My data"),
        ("/account", "account", "Your account"),
    ]:
        bea.get(walk.base + path)
        walk.check(bea, name, h1=h1, who="someone-else")
        if args.details in bea.page_source or "NG1 5FS" in bea.page_source:
            walk.fail(name, who="someone-else", saw="Ann's")

    # Erase me: signed out, every service confirming.
    ann.get(walk.base + "/my/data")
    tick(ann, ann.find_element(By.ID, "confirm"))
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "main form.panel button"))
    walk.check(ann, "erased", h1="erased", shows="signed out")
    ann.get(walk.base + "/my/groups")
    if "/sign-in" not in ann.current_url:
        walk.fail("signed-out", landed=ann.current_url)


def run(steps, people, extra):
    """A walk's main: parses the arguments every walk takes and `extra` (the
    walk's own, all required), opens a browser for each of `people`, checks
    axe itself, runs steps(walk, *browsers, args), and prints the report."""
    parser = argparse.ArgumentParser()
    for name in ["--base", "--screenshots", *extra]:
        parser.add_argument(name, required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    shots = pathlib.Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    walk = Walk(args.base, shots)
    browsers = [driver(args.chromium, args.chromedriver) for _ in range(people)]
    try:
        walk.failures += check_axe_finds_problems(browsers[0])
        steps(walk, *browsers, args)
    except Exception as error:  # a step that could not be taken
        walk.fail(
            "walk",
            error=repr(error),
            trace=traceback.format_exc()[-3000:],
            urls=[b.current_url for b in browsers],
        )
    finally:
        for browser in browsers:
            browser.quit()
    print(json.dumps({"checked": walk.checked, "failures": walk.failures}), flush=True)
    sys.exit(1 if walk.failures else 0)


if __name__ == "__main__":
    run(walk_through, 2, ["--group-name", "--details", "--email", "--search-words"])
