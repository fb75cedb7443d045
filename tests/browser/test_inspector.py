"""The memory inspector in a real headless Chromium against a real server (Redis, Elasticsearch).

Each test logs in with a tenant key through the page's form and works the page as a person
would: links, buttons and the keyboard, never the API behind its back for what it checks.
"""

from __future__ import annotations

import re

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from service.ui import STATIC_DIR
from tests.support.browser import Inspector
from tests.support.inspector_site import GUITAR, RIVAL_SECRET, Site

SVG_NS = "http://www.w3.org/2000/svg"
pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.elasticsearch, pytest.mark.slow]


def search(page: Inspector, question: str) -> None:
    """Type a question into the search view and press Enter."""
    box = page.find("input[name=q]")
    box.clear()
    box.send_keys(question, Keys.ENTER)


def open_result(page: Inspector, content: str) -> None:
    """Open the search result with this content by keyboard (focus the link, press Enter)."""
    link = page.wait_text(content, "ol.results a.content")
    link.send_keys(Keys.ENTER)
    page.wait_text("History", "#history-h")


@pytest.mark.timeout(240)
def test_find_a_user_and_search_shows_the_memory_with_its_explanation(
    page: Inspector, site: Site
) -> None:
    """Log in, find alice by prefix (counts shown), search 吉他: the memory with kNN/BM25 ranks."""
    page.login(site.acme_key)
    page.wait_text("Users", "h1")
    prefix = page.find("input[name=prefix]")
    prefix.send_keys("ali", Keys.ENTER)
    card = page.wait_text("alice", "ul.users li")
    assert "bob" not in page.find("ul.users").text
    facts = page.facts(card)
    assert (facts["memories"], facts["pending turns"], facts["dead letters"]) == ("4", "2", "0")
    page.screenshot("inspector-users-1280.png", 1280)
    page.width(1280)

    card.find_element(By.LINK_TEXT, "alice").send_keys(Keys.ENTER)
    page.wait_text(GUITAR, "ol.timeline")
    first = page.find_all("ol.timeline li.memory")
    assert len(first) == 4 and not page.find_all("li.memory.status-superseded")
    guitar = next(li for li in first if GUITAR in li.text)
    assert "observation" in guitar.text and "2024-05" in guitar.text  # month granularity
    assert "2023-10-26" in next(li.text for li in first if "马拉松" in li.text)  # day

    page.find("select[name=status]").send_keys("all")  # the filter, by keyboard
    page.find("form.filters button[type=submit]").send_keys(Keys.ENTER)
    old = page.wait_text("Hangzhou", "li.memory.status-superseded")
    assert "reason: edited" in old.text
    assert len(page.find_all("ol.timeline li.memory")) == 5
    page.screenshot("inspector-1280.png", 1280)
    page.screenshot("inspector-390.png", 390)
    assert page.overflow_x() == 0, "the timeline is wider than a 390 px screen"
    page.width(1280)
    page.find("select[name=kinds]").send_keys("raw")
    page.find("form.filters button[type=submit]").send_keys(Keys.ENTER)
    page.wait_text("1 memory", "[role=status]")
    assert "noodles" in page.find("ol.timeline").text
    page.go("/u/alice?status=all&since=2099-01-01")  # a time window with nothing in it
    page.wait_text("No memories match these filters.", "[role=status]")
    assert page.find("input[name=since]").get_attribute("value") == "2099-01-01"
    page.go("/u/alice?status=all")
    old = page.wait_text("Hangzhou", "li.memory.status-superseded")
    old.find_element(By.CSS_SELECTOR, "a.successor").send_keys(Keys.ENTER)
    page.wait_text("Alice moved to Suzhou", "article .content")

    page.find("#nav").find_element(By.LINK_TEXT, "Search").send_keys(Keys.ENTER)
    search(page, "吉他")
    top = page.wait_text(GUITAR, "ol.results li")
    why = page.facts(top)
    assert why["kNN rank"] == "#1" and why["BM25 rank"] == "#1", why
    assert "recency +" in why["boosts"] and why["time match"] == "no", why
    assert why["pending"].startswith("no")
    page.screenshot("inspector-search-1280.png", 1280)
    page.screenshot("inspector-search-390.png", 390)
    assert page.overflow_x() == 0, "the search view is wider than a 390 px screen"
    assert page.unnamed_controls() == []

    now = page.find("input[name=now]")  # a question with a time, asked on a given day
    now.send_keys("2024-06-10T09:00:00+08:00")
    search(page, "What hobby did I have in May 2024?")
    dated = page.wait_text(GUITAR, "ol.results li")
    assert page.facts(dated)["time match"].startswith("yes (+"), page.facts(dated)
    page.find("input[name=now]").clear()

    search(page, "上海出差")  # a buffered turn is found too, and flagged as pending
    pending = page.wait_text("明天我要去上海出差", "ol.results li")
    assert "pending" in pending.find_element(By.CSS_SELECTOR, ".meta").text
    assert page.facts(pending)["pending"].startswith("yes")
    assert page.console_errors() == []


@pytest.mark.timeout(240)
def test_edit_creates_a_second_version_in_the_history(page: Inspector, site: Site) -> None:
    """Edit a memory from its page: the new version opens, its history lists both versions."""
    site.seed(
        "carol", [{"content": "Carol drinks green tea every morning.", "kind": "observation"}]
    )
    page.login(site.acme_key)
    page.wait_text("Users", "h1")
    page.go("/u/carol/search?q=tea")
    open_result(page, "Carol drinks green tea")
    page.find("article button").click()  # Edit
    text = page.find("form.edit textarea")
    assert page.unnamed_controls() == []
    text.clear()
    text.send_keys("Carol switched to oolong tea in 2024.")
    page.find("form.edit button[type=submit]").send_keys(Keys.ENTER)
    page.wait_text("Carol switched to oolong tea", "article .content")
    history = page.wait_text("2 versions", "#history-h").find_element(By.XPATH, "..")
    items = history.find_elements(By.CSS_SELECTOR, "ol.history li")
    assert len(items) == 2
    assert "superseded" in items[0].text and "edited" in items[0].text
    assert "Carol drinks green tea" in items[0].text and "oolong" in items[1].text
    page.screenshot("inspector-memory-1280.png", 1280)
    page.width(1280)

    page.go("/u/carol?status=all")
    old = page.wait_text("Carol drinks green tea", "li.memory.status-superseded")
    old.find_element(By.LINK_TEXT, "see the version that replaced it →").click()
    page.wait_text("Carol switched to oolong tea", "article .content")
    assert page.console_errors() == []


@pytest.mark.timeout(240)
def test_delete_asks_first_then_the_memory_is_gone_from_search(page: Inspector, site: Site) -> None:
    """Delete by keyboard, through the confirmation step: search no longer returns the memory."""
    site.seed(
        "dave",
        [
            {"content": "Dave is allergic to peanuts.", "kind": "observation"},
            {"content": "Dave collects vinyl records.", "kind": "observation"},
        ],
    )
    page.login(site.acme_key)
    page.wait_text("Users", "h1")
    page.go("/u/dave/search?q=peanuts")
    open_result(page, "Dave is allergic to peanuts")
    delete = page.find("article button.danger")
    delete.send_keys(Keys.ENTER)
    confirm = page.wait_text("Delete this memory?", ".confirm")
    yes = confirm.find_element(By.CSS_SELECTOR, "button.danger")
    assert page.driver.switch_to.active_element == yes  # focus moved to the decision
    page.find(".confirm button.secondary").send_keys(Keys.ENTER)  # Cancel keeps it
    assert not page.find_all(".confirm")
    page.find("article button.danger").send_keys(Keys.ENTER)
    page.wait_text("Delete this memory?", ".confirm")
    page.driver.switch_to.active_element.send_keys(Keys.ENTER)
    page.wait_text("Deleted the memory", "#banner")
    page.wait_text("Dave collects vinyl", "ol.timeline")
    assert "allergic to peanuts" not in page.find("ol.timeline").text

    page.go("/u/dave/search?q=peanuts")
    page.wait_text("result", "[role=status]")
    assert not page.find("#banner").is_displayed()  # the notice went with the view it was for
    results = page.find("ol.results").text
    assert "allergic to peanuts" not in results and "vinyl" in results
    assert page.console_errors() == []


@pytest.mark.timeout(240)
def test_a_wrong_key_gets_the_login_form_and_no_tenant_sees_another(
    page: Inspector, site: Site
) -> None:
    """A wrong key: the login form with a message and no data; rival's key sees only rival."""
    page.login("mlk_00000000_" + "0" * 43)
    page.wait_text("The key was refused", "form.login")
    assert "401" in page.find("form.login").text
    assert not page.find_all("ul.users, ol.timeline, ol.results")
    page.go("/u/alice")  # no key kept: a deep link lands on the login form too
    page.wait_text("Open the memory inspector", "form.login")
    assert GUITAR not in page.driver.page_source

    page.login(site.rival_key)
    page.wait_text("zed-rival-only", "ul.users")
    assert "bob" not in page.find("ul.users").text
    page.go("/u/alice/search?q=吉他")
    page.wait_text("result", "[role=status]")
    assert GUITAR not in page.driver.page_source  # rival's alice is not acme's alice
    assert RIVAL_SECRET in page.find("ol.results").text
    errors = page.console_errors(allowed=("status of 401",))  # the refused key's own request
    assert errors == []


@pytest.mark.timeout(240)
def test_memory_text_is_shown_as_text_never_run_as_html(page: Inspector, site: Site) -> None:
    """A memory holding markup shows its characters; no element or script comes out of it."""
    markup = "<img src=x onerror=\"document.title='pwned'\"><b>bold?</b> 乐器"
    site.seed("eve", [{"content": markup, "kind": "observation"}])
    page.login(site.acme_key)
    page.wait_text("Users", "h1")
    page.go("/u/eve")
    shown = page.wait_text("乐器", "ol.timeline a.content")
    assert shown.text == markup
    assert not shown.find_elements(By.CSS_SELECTOR, "img, b")
    assert page.driver.title != "pwned"
    assert page.console_errors() == []


def test_the_page_is_served_by_memlane_itself_with_no_outside_resource(site: Site) -> None:
    """/ui redirects to /ui/; every file is memlane's own (no http(s) URL in any of them) and
    comes with a Content-Security-Policy that allows only the page's own origin."""
    with httpx.Client(base_url=site.server.url) as http:
        assert http.get("/ui").headers["location"] == "/ui/"
        index = http.get("/ui/")
        assert index.status_code == 200 and "app.js" in index.text
        assert "default-src 'self'" in index.headers["content-security-policy"]
        for path in sorted(STATIC_DIR.iterdir()):
            r = http.get(f"/ui/{path.name}")
            assert r.status_code == 200, path.name
            text = r.text.replace(SVG_NS, "")  # a namespace name, never fetched
            assert not re.search(r"https?://", text), f"{path.name} names an outside URL"
        assert "javascript" in http.get("/ui/app.js").headers["content-type"]
        assert http.get("/ui/nope.js").status_code == 404
