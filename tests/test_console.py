"""The console in a real headless Chromium (Debian's, driven by Selenium through Debian's
chromedriver) against a real ``idgraph serve`` and Neo4j: sign-in and roles, search, the
identity graph and a link's evidence, a steward's split-off of a family tablet, a marketer's
live estimate, hostile values rendered inert, and the headers that keep the page safe.

The world is loaded once for the module (the demo data set, small, plus a family whose
tablet joined Ann and Bob, plus hostile values), and the tests run in file order: the
split-off, which changes the world, comes last. Each page is saved as a PNG into
``IDGRAPH_SCREENSHOTS`` (the README's screenshots are taken this way) or a temporary
directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from identity.config import Settings
from identity.store.driver import Driver, Graph
from tests.api_server import MARKETER, READER, STEWARD, data
from tests.cli import cli_env, ok
from tests.resolving import identify, identity_of, load_events, run

pytestmark = pytest.mark.neo4j

HOSTILE = '<img src=x onerror="window.pwned=1;alert(1)">'
ANN, BOB = "email:ann@example.org", "email:bob@example.org"
BOBS = [BOB, "cookie:ck-bob"]
CARL = "email:carl@example.org"
WAIT = 20.0


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "Chromium and chromedriver are needed for the console's tests: `make setup` "
            "installs Debian's chromium and chromium-driver"
        )
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    chromium, driver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1440,1000")
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("IDGRAPH_SCREENSHOTS")
    folder = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def world(
    neo4j_driver: Driver, neo4j_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The demo data set (300 people), Ann and Bob joined by their family tablet, and a
    cookie and traits whose values are HTML that would run if parsed."""
    graph = Graph(neo4j_driver, neo4j_settings.neo4j_database)
    graph.wipe()
    tmp = tmp_path_factory.mktemp("world")
    ok("demo", "--people", "300", env=cli_env(neo4j_settings, tmp, IDGRAPH_STATE_DIR=str(tmp)))
    load_events(
        graph,
        tmp,
        "family",
        [
            identify(1, cookie="ck-ann", email="ann@example.org", first_name="Ann"),
            identify(2, cookie="ck-tablet", email="ann@example.org"),
            identify(3, cookie="ck-tablet", email="bob@example.org"),
            identify(4, cookie="ck-bob", email="bob@example.org", first_name="Bob"),
            identify(5, cookie="ck-bob", email="ann@example.org"),
            identify(6, cookie=HOSTILE, email=HOSTILE, city=HOSTILE),
            identify(7, cookie="ck-carl-1", email="carl@example.org", first_name="Carl"),
            identify(8, cookie="ck-carl-2"),
        ],
    )
    run(graph, tmp, as_of=datetime.now(UTC))
    # Carl's second cookie, alone until a later load ties it to his email: a merge; of the
    # two identities (as old as each other) one keeps its id, the other is merged into it
    before = {identity_of(graph, "cookie:ck-carl-2"), identity_of(graph, CARL)}
    load_events(graph, tmp, "carl", [identify(9, cookie="ck-carl-2", email="carl@example.org")])
    run(graph, tmp, as_of=datetime.now(UTC))
    carl = identity_of(graph, CARL)
    [absorbed] = before - {carl}
    return {
        "family": identity_of(graph, ANN),
        "hostile": identity_of(graph, f"cookie:{HOSTILE}"),
        "carl": carl,
        "absorbed": absorbed,
    }


def wait(browser: WebDriver, css: str) -> WebElement:
    """The first element ``css`` finds once there is one; on a timeout, what the page shows
    and what the browser logged."""
    try:
        WebDriverWait(browser, WAIT).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))
    except TimeoutException:
        shown = browser.find_element(By.TAG_NAME, "body").text
        logged = [entry["message"] for entry in browser.get_log("browser")]
        raise AssertionError(f"no {css} at {browser.current_url}: {shown!r} {logged}") from None
    return browser.find_element(By.CSS_SELECTOR, css)


def signed_out(browser: WebDriver, api: str) -> None:
    """The console freshly loaded, with nothing in this tab's sessionStorage."""
    browser.get(f"{api}/healthz")  # this origin, without the console running
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{api}/console/")


def sign_in(browser: WebDriver, api: str, key: str) -> None:
    signed_out(browser, api)
    wait(browser, "#key").send_keys(key)
    browser.find_element(By.ID, "signin").click()
    wait(browser, "#role")
    wait(browser, "#count-identities")


def open_page(browser: WebDriver, api: str, hash_: str, ready: str) -> WebElement:
    browser.get(f"{api}/console/#{hash_}")
    return wait(browser, ready)


def graph_drawn(browser: WebDriver) -> WebElement:
    WebDriverWait(browser, WAIT).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#graph[data-nodes]")
    )
    return browser.find_element(By.ID, "graph")


def search(browser: WebDriver, value: str) -> None:
    box = wait(browser, "#search-value")
    box.clear()
    box.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()


def test_the_page_is_served_with_its_safety_headers(api: str) -> None:
    for path in ("/console/", "/console/js/app.js", "/console/console.css"):
        response = httpx.get(api + path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    missing = httpx.get(api + "/console/no-such-page")
    assert (
        missing.status_code == 404
        and "script-src 'self'" in missing.headers["content-security-policy"]
    )
    # the console's files only where the headers are: not under /static
    assert httpx.get(api + "/static/console/index.html").status_code == 404
    module = httpx.get(api + "/console/js/graph.js").text
    vendored = module.split('from "', 1)[1].split('"', 1)[0]
    assert vendored.startswith("/static/vendor/cytoscape@")
    library = httpx.get(api + vendored)
    assert library.status_code == 200 and "javascript" in library.headers["content-type"]
    licence = httpx.get(api + vendored.split("/dist/")[0] + "/LICENSE")
    assert licence.status_code == 200 and "Permission is hereby granted" in licence.text


def test_sign_in_shows_the_role_and_only_its_pages(
    browser: WebDriver, api: str, world: dict[str, str], shots: Path
) -> None:
    signed_out(browser, api)
    wait(browser, "#key").send_keys("not-a-key")
    browser.find_element(By.ID, "signin").click()
    problem = wait(browser, ".signin .problem")
    assert "not known" in problem.text
    browser.save_screenshot(str(shots / "sign-in.png"))
    sign_in(browser, api, READER)
    assert browser.find_element(By.ID, "role").text == "reader"
    pages = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")]
    assert pages == ["Overview"]
    # the key is in this tab's sessionStorage only
    assert browser.execute_script("return sessionStorage.getItem('idgraph.key')") == READER
    assert browser.execute_script("return localStorage.length") == 0
    assert READER not in browser.execute_script("return document.cookie")
    sign_in(browser, api, STEWARD)
    assert browser.find_element(By.ID, "role").text == "steward"
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")] == [
        "Overview",
        "Review queue",
    ]


def test_the_overview_shows_counts_sizes_loads_and_resolves(
    browser: WebDriver, api: str, world: dict[str, str], shots: Path
) -> None:
    sign_in(browser, api, READER)
    stats = data(api, "{ stats { identities } }", READER)["stats"]
    count = browser.find_element(By.CSS_SELECTOR, "#count-identities strong").text
    assert int(count.replace(",", "").replace("\u202f", "")) == stats["identities"]
    text = browser.find_element(By.ID, "view").text
    assert "no_identifier" not in text or "Records rejected for" in text
    for heading in ("Identifiers per type", "Identity sizes", "Recent loads", "Recent resolves"):
        assert heading in text
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    browser.save_screenshot(str(shots / "overview.png"))


def test_a_raw_email_lands_on_its_identity_with_every_identifier_drawn(
    browser: WebDriver, api: str, world: dict[str, str]
) -> None:
    sign_in(browser, api, READER)
    search(browser, "  Ann@Example.ORG ")
    wait(browser, "#identity-id")
    assert browser.find_element(By.ID, "identity-id").text == world["family"]
    drawn = graph_drawn(browser)
    size = data(api, "query ($id: ID!) { profile(id: $id) { size } }", READER, id=world["family"])
    assert int(drawn.get_attribute("data-members") or -1) == size["profile"]["size"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#identifiers tr.member")
    assert len(rows) == size["profile"]["size"]


def test_an_unknown_value_says_so(browser: WebDriver, api: str, world: dict[str, str]) -> None:
    sign_in(browser, api, READER)
    search(browser, "nobody@example.org")
    assert "No match" in wait(browser, "#no-match").text


def test_a_links_evidence_opens(browser: WebDriver, api: str, world: dict[str, str]) -> None:
    sign_in(browser, api, READER)
    open_page(browser, api, f"/identity/{world['family']}", "#links tr[data-link]")
    graph_drawn(browser)
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "#links tr[data-link]")
        if "ck-tablet" in r.text and "bob@example.org" in r.text
    )
    row.click()
    details = wait(browser, "#link-details")
    assert "cookie:ck-tablet" in details.text and "email:bob@example.org" in details.text
    assert "Evidence" in details.text and ":m3" in details.text  # the record it came from
    assert "segment" in details.text  # the load's source, in the loads table


def test_a_reader_sees_no_action_buttons(
    browser: WebDriver, api: str, world: dict[str, str]
) -> None:
    sign_in(browser, api, READER)
    open_page(browser, api, f"/identity/{world['family']}", "#identifiers")
    graph_drawn(browser)
    browser.find_element(By.CSS_SELECTOR, "#identifiers input[type=checkbox]").click()
    assert not browser.find_elements(By.ID, "actions")
    assert not browser.find_elements(By.CSS_SELECTOR, "button.action")
    assert browser.find_element(By.ID, "details").text  # what is selected still shows


def test_hostile_values_render_as_text(
    browser: WebDriver, api: str, world: dict[str, str], shots: Path
) -> None:
    sign_in(browser, api, STEWARD)
    open_page(browser, api, f"/identity/{world['hostile']}", "#identifiers")
    graph_drawn(browser)
    page = browser.find_element(By.ID, "view").text
    assert HOSTILE in page  # the cookie's value and the city trait, as text
    for node in browser.find_elements(By.CSS_SELECTOR, "#identifiers input[type=checkbox]"):
        node.click()  # the details panel shows each value too
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert browser.execute_script("return window.pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#view img")
    # the load refused the same value as an email, with its reason, and kept the rest
    loads = data(api, "{ recentLoads(first: 5) { file valueReasons { reason count } } }", READER)
    family = next(x for x in loads["recentLoads"] if x["file"].endswith("family.ndjson"))
    assert {"reason": "invalid_email", "count": 1} in family["valueReasons"]


def test_a_marketers_live_estimate_equals_the_apis(
    browser: WebDriver, api: str, world: dict[str, str], shots: Path
) -> None:
    sign_in(browser, api, MARKETER)
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")] == [
        "Overview",
        "Segments",
    ]
    open_page(browser, api, "/segments/new", "#builder input.trait-name")
    browser.find_element(By.CSS_SELECTOR, "#builder input.trait-name").send_keys("country")
    browser.find_element(By.CSS_SELECTOR, "#builder input.trait-value").send_keys("FR")
    definition: dict[str, Any] = {"all": [{"trait": "country", "eq": "FR"}]}
    _estimate_matches(browser, api, definition)
    browser.find_element(By.CSS_SELECTOR, "#builder .add-condition").click()
    kinds = browser.find_elements(By.CSS_SELECTOR, "#builder select.kind")
    kinds[-1].find_element(By.CSS_SELECTOR, "option[value=consent]").click()
    wait(browser, "#builder input.condition-name").send_keys("marketing")
    definition["all"].append({"consent": "marketing"})
    _estimate_matches(browser, api, definition)
    assert "consent" in browser.find_element(By.ID, "definition-json").get_attribute("textContent")
    wait(browser, "#segment-name").send_keys("fr-marketing")
    browser.find_element(By.ID, "save-segment").click()
    wait(browser, "#refresh-segment").click()
    WebDriverWait(browser, WAIT).until(
        lambda b: "Refreshed" in b.find_element(By.ID, "notice").text
    )
    size = wait(browser, "#segment-size")
    assert int(size.text.replace(",", "")) == api_size(api, definition)
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart circle.dot")
    browser.save_screenshot(str(shots / "segment.png"))
    wait(browser, "#export-audience").click()
    wait(browser, "#download-audience").click()
    downloads: Path = browser.downloads  # type: ignore[attr-defined]
    WebDriverWait(browser, WAIT).until(lambda _: list(downloads.glob("exp-*.csv")))
    saved = next(downloads.glob("exp-*.csv"))
    served = httpx.get(
        f"{api}/exports/{saved.name}", headers={"Authorization": f"Bearer {MARKETER}"}
    )
    assert saved.read_text() == served.text
    assert served.text.splitlines()[0].startswith("identity_id,")


def api_size(api: str, definition: dict[str, Any]) -> int:
    """The size the API estimates for ``definition``."""
    preview = "mutation ($d: SegmentConditionInput!) { previewSegment(definition: $d) { size } }"
    return int(data(api, preview, MARKETER, d=definition)["previewSegment"]["size"])


def _estimate_matches(browser: WebDriver, api: str, definition: dict[str, Any]) -> None:
    expected = api_size(api, definition)
    WebDriverWait(browser, WAIT).until(
        lambda b: (
            b.find_element(By.ID, "estimate").get_attribute("data-size") == str(expected)
            and b.find_element(By.ID, "estimate").get_attribute("data-state") == "done"
        )
    )


def test_the_review_queue_opens_identities(
    browser: WebDriver, api: str, world: dict[str, str], shots: Path
) -> None:
    sign_in(browser, api, STEWARD)
    view = open_page(browser, api, "/review", "#view h1")
    assert "Shared identifiers" in view.text or "Shared identifiers" in browser.page_source
    largest = data(api, "{ largestIdentities(first: 1) { id } }", STEWARD)["largestIdentities"]
    browser.save_screenshot(str(shots / "review.png"))
    browser.find_element(By.LINK_TEXT, largest[0]["id"]).click()
    assert wait(browser, "#identity-id").text == largest[0]["id"]
    graph_drawn(browser)
    browser.find_element(By.CSS_SELECTOR, "#links tr[data-link]").click()
    wait(browser, "#link-details")
    browser.save_screenshot(str(shots / "identity.png"))


def test_a_merged_id_opens_the_identity_it_was_merged_into(
    browser: WebDriver, api: str, world: dict[str, str]
) -> None:
    assert world["absorbed"] != world["carl"]
    sign_in(browser, api, READER)
    search(browser, world["absorbed"])
    assert wait(browser, "#identity-id").text == world["carl"]
    assert world["absorbed"] in browser.find_element(By.ID, "redirected").text


def test_a_steward_cuts_a_link_with_a_reason(
    browser: WebDriver, api: str, world: dict[str, str]
) -> None:
    sign_in(browser, api, STEWARD)
    open_page(browser, api, f"/identity/{world['carl']}", "#links tr[data-link]")
    graph_drawn(browser)
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "#links tr[data-link]")
        if "ck-carl-2" in r.text
    )
    row.click()
    wait(browser, "#cut").click()
    assert "Give a reason" in wait(browser, "#action-result .problem").text  # nothing done
    wait(browser, "#reason").send_keys("a shared cookie, not Carl's")
    browser.find_element(By.ID, "cut").click()
    WebDriverWait(browser, WAIT).until(lambda b: "cut" in b.find_element(By.ID, "notice").text)
    graph_drawn(browser)
    found = data(
        api,
        '{ a: profile(identifier: {type: "cookie", value: "ck-carl-2"}) { id } '
        ' b: profile(identifier: {type: "email", value: "carl@example.org"}) { id } }',
        READER,
    )
    assert found["a"]["id"] != found["b"]["id"]
    verdicts = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#links tr[data-link]")]
    assert any("ck-carl-2" in text and "cut by a steward" in text for text in verdicts)


def test_a_steward_splits_the_family_tablet_off(
    browser: WebDriver, api: str, world: dict[str, str], shots: Path
) -> None:
    sign_in(browser, api, STEWARD)
    open_page(browser, api, f"/identity/{world['family']}", "#identifiers")
    graph_drawn(browser)
    for key in BOBS:
        browser.find_element(
            By.CSS_SELECTOR, f'#identifiers input[type=checkbox][value="{key}"]'
        ).click()
    wait(browser, "#split-preview").click()
    groups = wait(browser, "#split-groups")
    assert len(groups.find_elements(By.TAG_NAME, "li")) == 2
    wait(browser, "#reason").send_keys("Bob's devices: the family tablet joined them")
    browser.save_screenshot(str(shots / "split-off.png"))
    browser.find_element(By.ID, "split-apply").click()
    WebDriverWait(browser, WAIT).until(
        lambda b: "split off" in b.find_element(By.ID, "notice").text
    )
    found = data(
        api,
        '{ a: profile(identifier: {type: "email", value: "ann@example.org"}) { id } '
        'b: profile(identifier: {type: "email", value: "bob@example.org"}) { id } }',
        READER,
    )
    assert found["a"]["id"] != found["b"]["id"]
    history = data(
        api,
        "query ($id: ID!) { profile(id: $id) { history { edges { node { action "
        "reason actor } } } } }",
        READER,
        id=found["b"]["id"],
    )
    actions = [e["node"] for e in history["profile"]["history"]["edges"]]
    assert {
        "action": "split_off",
        "reason": "Bob's devices: the family tablet joined them",
        "actor": "steward-alice",
    } in actions
