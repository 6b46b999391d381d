"""Organisers and staff walk the web in headless Chromium (issue 33): Olive
signs in, proposes a group through the form (a missing town is named, then
given) and sends it for review; Sam signs in at the region's identity
provider and approves it from the review page; Olive previews when it meets,
saves it, confirms the details are still right, messages the members, and
opens the edit form.
The members' forum (issue 34): agendas, notes by the notes-taker after the
meeting, who came, pooled links and a committee; a non-member is refused it.
Bea signs in and joins; she reports Olive's message to the members from her
inbox and tells the staff about a group; Sam closes both reports with a note
(after being asked for one), opens the topics, checks a file to import, and looks at the dead letters. Bea is refused Olive's desk and Sam's review
page. Every page met is checked as in walk.py: axe-core
at desktop width, 360 px and 200 % zoom, no sideways scrolling, a screenshot,
and its heading and text. Driven by services/gateway/tests/browser.rs, which
feeds the sign-in links; the last line printed is the JSON report.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from check_pages import set_view
from walk import keyboard_submit, press_enter, run, sign_in, tick


def set_value(browser, field, value):
    """Date and time fields are typed differently in each locale: set them."""
    browser.execute_script("arguments[0].value = arguments[1];", browser.find_element(By.ID, field), value)


def type_into(browser, field, value):
    box = browser.find_element(By.ID, field)
    box.clear()
    box.send_keys(value)


def reload_until(browser, text):
    """True once `text` is on the page; reloads it otherwise (for polling)."""
    if text in browser.page_source:
        return True
    browser.refresh()
    return False


def approve_all(olive, desk):
    """Says yes to everyone asking to join, one form at a time."""
    olive.get(desk)
    approve = "form[action*='/requests/'][action$='/approve'] button"
    while olive.find_elements(By.CSS_SELECTOR, approve):
        keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, approve))
        olive.get(desk)


def staff_sign_in(walk, browser, sub):
    """Through the region's identity provider's own form, back to /staff."""
    browser.get(walk.base + "/staff/sign-in?next=/staff")
    box = browser.find_element(By.NAME, "sub")
    box.send_keys(sub)
    press_enter(browser, box)
    WebDriverWait(browser, 20).until(lambda b: "/staff" in b.current_url and "/sign-in" not in b.current_url)


def organise(walk, olive, sam, bea, args):
    name = args.group_name
    set_view(olive, 1280, 1)
    sign_in(walk, olive, args.email, check=False)
    olive.get(walk.base + "/organise")
    walk.check(olive, "organise", h1="Groups you run", shows="You do not run a group here yet")
    link = olive.find_element(By.LINK_TEXT, "Propose or list a group")
    press_enter(olive, link)
    walk.check(olive, "group-form", h1="Propose or list a group", shows="Who it is for")

    # The card, without a town first: named, and the rest kept.
    type_into(olive, "name", name)
    type_into(olive, "summary", "Tea and talk for people caring for someone")
    tick(olive, olive.find_element(By.ID, "topic-carers"))
    type_into(olive, "venue-0-name", "Lakeside library")
    type_into(olive, "venue-0-address", "1 Lake Street")
    type_into(olive, "venue-0-postcode", "NG1 5FS")
    type_into(olive, "venue-0-accessibility", "Step-free, hearing loop")
    tick(olive, olive.find_element(By.ID, "join_policy-approval"))
    send = olive.find_element(By.CSS_SELECTOR, "button[value=submit]")
    keyboard_submit(olive, send)
    walk.check(olive, "group-form-error", shows="The town (place 1) must not be empty")
    if olive.find_element(By.ID, "name").get_attribute("value") != name:
        walk.fail("group-form-error", kept=False)
    type_into(olive, "venue-0-town", "Nottingham")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "button[value=submit]"))
    walk.check(olive, "organise-group", h1=name, shows="Waiting for the region's staff to check it")
    desk = olive.current_url

    # Sam reviews it and approves.
    set_view(sam, 1280, 1)
    staff_sign_in(walk, sam, "sam")
    walk.check(sam, "staff", h1="Staff", shows=name)
    link = sam.find_element(By.LINK_TEXT, name)
    press_enter(sam, link)
    walk.check(sam, "staff-review", h1="Review: " + name, shows="A new listing", who="operator")
    review = sam.current_url
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, "form[action$='/review'] button"))
    walk.check(sam, "staff-review-error", shows="Choose whether to approve it or send it back", who="operator")
    tick(sam, sam.find_element(By.ID, "decision-approve"))
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, "form[action$='/review'] button"))
    walk.check(sam, "staff-reviewed", shows="Listed: people can find it", who="operator")

    # A visitor finds it in search and writes to the organisers, giving an
    # address without ticking the box: it stays behind (the test reads
    # Olive's email).
    bea.get(walk.base + "/?q=carers")
    WebDriverWait(bea, 30).until(lambda b: reload_until(b, name))
    walk.check(bea, "search-listed", shows=name, who="visitor")
    press_enter(bea, bea.find_element(By.LINK_TEXT, name))
    press_enter(bea, bea.find_element(By.LINK_TEXT, "Write to the organisers"))
    type_into(bea, "message", "Is there parking near the library?")
    type_into(bea, "reply_to", "visitor@example.org")
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, "main form button"))
    walk.check(bea, "contact-sent", shows="Your message has gone to the organisers", who="visitor")

    # When it meets: a preview, then saved.
    olive.get(desk)
    walk.check(olive, "organise-group-listed", h1=name, shows="Listed: people can find it")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/confirm'] button"))
    walk.check(olive, "organise-confirmed", h1=name, shows="Details last confirmed on")

    # Bea signs in and joins the group.
    sign_in(walk, bea, "bea@example.org", check=False)
    bea.get(desk.replace("/organise/", "/groups/"))
    type_into(bea, "display_name", "Bea")
    tick(bea, bea.find_element(By.ID, "agree"))
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, "section.place form.panel button"))
    Select(olive.find_element(By.ID, "weekday")).select_by_value("wednesday")
    set_value(olive, "start_time", "19:00")
    set_value(olive, "end_time", "20:30")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "button[value=preview]"))
    walk.check(olive, "organise-preview", shows="Nothing is saved yet")
    if "Every Wednesday" not in olive.page_source:
        walk.fail("organise-preview", missing="Every Wednesday")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "button[value=save]"))
    walk.check(olive, "organise-saved", shows="Saved.")
    if "Cancel this meeting" not in olive.page_source:
        walk.fail("organise-saved", missing="the next meetings")
    # She cancels the first meeting with a note, and says yes to Bea.
    type_into(olive, "note-1", "The library is closed")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/meetings/cancel'] button"))
    walk.check(olive, "organise-cancelled", h1=name, shows="People asking to join")
    approve_all(olive, desk)
    walk.check(olive, "organise-approved", h1=name, shows="Nobody is waiting for an answer")
    # Olive messages the members; Bea, a member, reports it to the staff
    # from her inbox.
    type_into(olive, "announce_title", "Christmas")
    type_into(olive, "announce_body", "Mince pies at the next meeting")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/announce'] button"))
    walk.check(olive, "organise-announced", h1=name, shows="Your message is on its way")
    bea.get(walk.base + "/my/notifications")
    WebDriverWait(bea, 30).until(lambda b: reload_until(b, "Report this message"))
    press_enter(bea, bea.find_element(By.LINK_TEXT, "Report this message"))
    walk.check(bea, "report-message", h1="Report a message", shows="Mince pies at the next meeting", who="member")
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, "form[action$='/report'] button"))
    walk.check(bea, "report-message-error", shows="Say what is wrong with it", who="member")
    type_into(bea, "reason", "Off topic for the group")
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, "form[action$='/report'] button"))
    walk.check(bea, "report-message-sent", shows="the region's staff will look at it", who="member")
    olive.get(desk + "/edit")
    walk.check(olive, "group-edit", h1="Edit the group's details", shows="the region's staff check your change before people see it")
    # A new summary waits for the staff, who see it against the public card
    # and approve it.
    type_into(olive, "summary", "Tea, talk and a walk for carers")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "button[value=save]"))
    walk.check(olive, "organise-edit-waiting", h1=name, shows="Tea, talk and a walk for carers")
    sam.get(review)
    walk.check(sam, "staff-review-edit", shows="Public now", who="operator")
    tick(sam, sam.find_element(By.ID, "decision-approve"))
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, "form[action$='/review'] button"))
    walk.check(sam, "staff-edit-approved", shows="Tea, talk and a walk for carers", who="operator")

    # Bea tells the staff of a group; Sam closes her report of the message,
    # then this, each with a note.
    bea.get(walk.base + "/tell-us")
    walk.check(bea, "tell-us", h1="Tell us about a group", shows="The group's name", who="visitor")
    type_into(bea, "name", "Chapel walkers")
    type_into(bea, "message", "Tuesdays at the chapel, 10am")
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, "form[action='/tell-us'] button"))
    walk.check(bea, "tell-us-sent", shows="the region's staff have your message", who="visitor")
    sam.get(walk.base + "/staff")
    walk.check(sam, "staff-reports", h1="Staff", shows="Suggested group: Chapel walkers", who="operator")
    close = "form[action$='/close']"
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, close + " button"))
    walk.check(sam, "staff-reports-error", shows="Say what you did about it", who="operator")
    for _ in range(2):
        note = sam.find_element(By.CSS_SELECTOR, close + " input[name=note]").get_attribute("id")
        type_into(sam, note, "Dealt with")
        keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, close + " button"))
    walk.check(sam, "staff-reports-closed", shows="No reports or suggestions are waiting", who="operator")
    sam.get(walk.base + "/staff/topics")
    walk.check(sam, "staff-topics", h1="Topics", shows="Add a topic", who="operator")
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, "form[action='/staff/topics'] button"))
    walk.check(sam, "staff-topics-error", shows="There is a problem", who="operator")
    press_enter(sam, sam.find_element(By.LINK_TEXT, "Carers"))
    walk.check(sam, "staff-topic", h1="Topic: Carers", shows="Retire it", who="operator")
    sam.get(walk.base + "/staff/import")
    walk.check(sam, "staff-import", h1="Import groups", shows="Check what would happen", who="operator")
    type_into(sam, "documents", "id,name\nwalk-1,Walkers\n")
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, "button[value=check]"))
    walk.check(sam, "staff-import-checked", shows="What would happen", who="operator")
    sam.get(walk.base + "/staff/dead-letters")
    walk.check(sam, "staff-dead-letters", h1="Dead letters", shows="Nothing is parked", who="operator")
    # A group imported long ago and never confirmed since: on the stale
    # list; nobody organises it, so Sam invites someone by email.
    sam.get(walk.base + "/staff")
    walk.check(sam, "staff-stale", h1="Staff", shows="not been confirmed as still right for over a year", who="operator")
    press_enter(sam, sam.find_element(By.LINK_TEXT, "Imported walkers"))
    walk.check(sam, "staff-review-unorganised", h1="Review: Imported walkers", shows="Nobody organises it", who="operator")
    invite = "form[action$='/invite']"
    # Sent empty first: named on the field.
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, invite + " button"))
    walk.check(sam, "staff-invite-error", shows="Enter an email address like name@example.org", who="operator")
    type_into(sam, "email", "rita@example.org")
    keyboard_submit(sam, sam.find_element(By.CSS_SELECTOR, invite + " button"))
    walk.check(sam, "staff-invited", shows="The invitation to organise it has gone to that address", who="operator")

    # Bea, a member, is refused both desks; her own is empty.
    bea.get(walk.base + "/organise")
    walk.check(bea, "organise", h1="Groups you run", shows="You do not run a group", who="someone-else")
    for url, page_name in [(desk, "organise-group"), (review, "staff-review")]:
        bea.get(url)
        walk.check(bea, page_name, h1="This is not yours to see", who="someone-else")
        if "Step-free" in bea.page_source or "My mother" in bea.page_source:
            walk.fail(page_name, who="someone-else", saw="Olive's")

    # A rota of Bea and Ann (Sam's browser, now signed in as Ann, who joins
    # too); Ann asks Bea to swap a turn, and Bea agrees on her own page.
    ann = sam
    sign_in(walk, ann, "ann@example.org", check=False)
    ann.get(desk.replace("/organise/", "/groups/"))
    type_into(ann, "display_name", "Ann")
    tick(ann, ann.find_element(By.ID, "agree"))
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "section.place form.panel button"))
    approve_all(olive, desk)
    type_into(olive, "duty", "chair")
    boxes = [b.get_attribute("id") for b in olive.find_elements(By.CSS_SELECTOR, "input[name^='order-']")]
    for n, box in enumerate(boxes, start=1):
        type_into(olive, box, str(n))
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/rota'] button"))
    ann.get(walk.base + "/my/groups")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "form[action$='/rota/swap'] button"))
    walk.check(ann, "my-groups-swap-asked", h1="My groups", shows="Waiting for their answer", who="member")
    olive.get(desk)
    walk.check(olive, "organise-swap-waiting", h1=name, shows="Swaps waiting for the other person's yes")
    bea.get(walk.base + "/my/groups")
    walk.check(bea, "my-groups-swap-to-answer", h1="My groups", shows="asks to swap turns as chair", who="member")
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, "button[name=answer][value=yes]"))
    walk.check(bea, "my-groups-swap-agreed", h1="My groups", who="member")
    if "asks to swap" in bea.page_source:
        walk.fail("my-groups-swap-agreed", still="the ask")

    # Ann says what she would do; Olive sees who is willing and how the turns
    # are shared; Bea may not see that page.
    ann.get(walk.base + "/my/groups")
    press_enter(ann, ann.find_element(By.LINK_TEXT, "Your part in the group"))
    walk.check(ann, "my-sharing", shows="What you would do", who="member")
    tick(ann, ann.find_element(By.ID, "willing-1"))
    type_into(ann, "other", "welcome, newsletter")
    type_into(ann, "skills", "I can design posters")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "main form button"))
    walk.check(ann, "my-sharing-saved", shows="Saved.", who="member")
    olive.get(desk)
    press_enter(olive, olive.find_element(By.LINK_TEXT, "Is the work shared?"))
    walk.check(olive, "organise-sharing", h1="Is the work shared?", shows="chair, welcome, newsletter")
    sharing = olive.current_url
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/rota'] button"))
    walk.check(olive, "organise-offered", h1=name, shows="In turn")
    bea.get(sharing)
    walk.check(bea, "organise-sharing", h1="This is not yours to see", who="someone-else")

    forum_walk(walk, olive, ann, bea, desk, name)


def forum_walk(walk, olive, ann, bea, desk, name):
    """The members' forum (issue 34): Olive closes agendas as a meeting
    starts (after a figure out of range is named), makes Ann the notes-taker
    and adds a meeting a few minutes on; Bea puts an item on its agenda; once
    it has begun Ann writes the notes, and Bea reads them. Ann pools a link
    and Olive sets up a committee that Ann leads; Ann tells its members."""
    forum = desk.replace("/organise/", "/my/groups/") + "/forum"
    olive.get(forum)
    walk.check(olive, "forum-organiser", shows="How the group is run")
    type_into(olive, "agenda_cutoff_hours", "999")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/forum/practice'] button"))
    walk.check(olive, "forum-practice-error", shows="The agenda's cut-off must be 0 to 336 hours")
    type_into(olive, "agenda_cutoff_hours", "0")
    type_into(olive, "chair_term_months", "12")
    tick(olive, olive.find_element(By.ID, "attendance"))
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/forum/practice'] button"))
    walk.check(olive, "forum-practice-saved", shows="The group's ways are saved.")

    olive.get(desk)
    type_into(olive, "duty", "notes")
    label = olive.find_element(By.XPATH, "//form[contains(@action,'/rota')]//label[normalize-space(text())='Ann']")
    for box in olive.find_elements(By.CSS_SELECTOR, "input[name^='order-']"):
        box.clear()
    type_into(olive, label.get_attribute("for"), "1")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/rota'] button"))
    # A meeting two or three minutes on, in the region's time.
    starts = (datetime.now(ZoneInfo("Europe/London")) + timedelta(minutes=3)).replace(second=0, microsecond=0)
    ends = starts + timedelta(minutes=30)
    set_value(olive, "add_date", starts.strftime("%Y-%m-%d"))
    set_value(olive, "add_start_time", starts.strftime("%H:%M"))
    set_value(olive, "add_end_time", ends.strftime("%H:%M"))
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/meetings/add'] button"))
    walk.check(olive, "organise-meeting-added", h1=name, shows=starts.strftime("%-d %B"))

    # Bea adds to the agenda of the meeting coming first (an empty item is
    # named first).
    bea.get(forum)
    WebDriverWait(bea, 30).until(lambda b: reload_until(b, "Taking the notes: Ann."))
    walk.check(bea, "forum", shows="Add an item for this meeting", who="member")
    item = "form[action$='/forum/agenda']"
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, item + " button"))
    walk.check(bea, "forum-agenda-error", shows="The item must not be empty", who="member")
    box = bea.find_element(By.CSS_SELECTOR, item + " textarea").get_attribute("id")
    type_into(bea, box, "Ideas for the spring walk")
    keyboard_submit(bea, bea.find_element(By.CSS_SELECTOR, item + " button"))
    walk.check(bea, "forum-agenda-added", shows="Ideas for the spring walk", who="member")

    # Meanwhile Ann pools a link; Olive sets up a committee Ann leads; Ann
    # tells its members.
    ann.get(forum)
    type_into(ann, "knowledge-title", "Canal path map")
    type_into(ann, "knowledge-url", "https://canal.example/map")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, "form[action$='/forum/knowledge'] button"))
    walk.check(ann, "forum-knowledge-added", shows="Canal path map", who="member")
    olive.get(forum)
    type_into(olive, "committee-new-name", "Walks")
    type_into(olive, "committee-new-duties", "Plan the spring walk")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/forum/committee'] button"))
    walk.check(olive, "forum-committee-error", shows="The lead")
    for who in ["Ann", "Bea"]:
        boxes = olive.find_elements(By.XPATH, "//fieldset[@id='committee-new-members']//label[normalize-space(text())='%s']" % who)
        if boxes:
            tick(olive, olive.find_element(By.ID, boxes[0].get_attribute("for")))
    Select(olive.find_element(By.ID, "committee-new-lead")).select_by_visible_text("Ann")
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, "form[action$='/forum/committee'] button"))
    walk.check(olive, "forum-committee-saved", shows="The committee is saved.")
    ann.get(forum)
    walk.check(ann, "forum-committee-lead", shows="led by Ann", who="member")
    notice = "form[action$='/committee-notice']"
    type_into(ann, ann.find_element(By.CSS_SELECTOR, notice + " input[name=title]").get_attribute("id"), "Route check")
    ann.find_element(By.CSS_SELECTOR, notice + " textarea").send_keys("Saturday at ten")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, notice + " button"))
    walk.check(ann, "forum-committee-notice", shows="The committee's members are told.", who="member")

    # Once the meeting has begun, Ann (the notes-taker) writes the notes.
    ann.get(forum)
    WebDriverWait(ann, 200, poll_frequency=5).until(lambda b: reload_until(b, "The notes of this meeting"))
    walk.check(ann, "forum-notes-taker", shows="The notes of this meeting", who="member")
    notes = "form[action$='/forum/notes']"
    box = ann.find_element(By.CSS_SELECTOR, notes + " textarea").get_attribute("id")
    type_into(ann, box, "We chose the canal path for the spring walk.")
    keyboard_submit(ann, ann.find_element(By.CSS_SELECTOR, notes + " button"))
    walk.check(ann, "forum-notes-saved", shows="The notes are saved.", who="member")
    bea.get(forum)
    walk.check(bea, "forum-notes-read", shows="We chose the canal path for the spring walk.", who="member")
    if bea.find_elements(By.CSS_SELECTOR, notes):
        walk.fail("forum-notes-read", bea_may_write=True)

    # Olive ticks who came.
    olive.get(forum)
    olive.find_element(By.XPATH, "//summary[normalize-space(text())='Tick who came']").click()
    came = "form[action$='/forum/came-others']"
    for who in ["Ann", "Bea"]:
        box = olive.find_element(By.XPATH, "//form[contains(@action,'/forum/came-others')]//label[normalize-space(text())='%s']" % who)
        tick(olive, olive.find_element(By.ID, box.get_attribute("for")))
    keyboard_submit(olive, olive.find_element(By.CSS_SELECTOR, came + " button"))
    walk.check(olive, "forum-attendance", shows="2 people came. (")

    # Nia, signed in but no member, sees nothing of it.
    sign_in(walk, ann, "nia@example.org", check=False)
    ann.get(forum)
    walk.check(ann, "forum", h1="This is not yours to see", who="someone-else")
    if "canal path" in ann.page_source:
        walk.fail("forum", who="someone-else", saw="the notes")


if __name__ == "__main__":
    run(organise, 3, ["--group-name", "--email"])
