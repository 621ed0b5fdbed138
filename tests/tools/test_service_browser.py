"""The page in Debian's chromium, headless, driven by Selenium through chromium-driver.

The story: create a dir pool, start it, create a volume and see it listed with the right
size, clone it, delete both, delete the pool; on the way, the keyboard, the second
confirmation for a pool holding volumes, and a narrow (phone) viewport. Screenshots are
kept in artifacts/browser/ (gitignored) to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools.service_server import Server, serving

pytestmark = pytest.mark.tools

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1280,900")

if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (scripts/setup --test)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    def __init__(self, driver: WebDriver, server: Server) -> None:
        self.d = driver
        self.server = server
        self.shots = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def wait(self, what: str, cond: Callable[[WebDriver], Any], timeout: float = 20) -> Any:
        def check(d: WebDriver) -> Any:
            error = d.find_element(By.ID, "error")
            if error.is_displayed():
                raise AssertionError(f"the page shows an error while waiting for {what}: "
                                     + error.text)
            return cond(d)
        return WebDriverWait(self.d, timeout, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException)).until(check, message=what)

    def css(self, selector: str) -> Any:
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        return list(self.d.find_elements(By.CSS_SELECTOR, selector))

    def click(self, selector: str) -> None:
        """Click the element once it is usable. The page re-renders its tables when a job
        ends, so the element found may go stale before the click: then it is found again
        (wait() retries on StaleElementReferenceException; a stale click clicks nothing)."""

        def attempt(d: WebDriver) -> bool:
            element = self.css(selector)
            if not (element.is_enabled() and element.is_displayed()):
                return False
            element.click()
            return True

        self.wait(f"{selector} clicked", attempt)

    def fill(self, selector: str, text: str) -> None:
        field = self.css(selector)
        field.clear()
        field.send_keys(text)

    def shot(self, name: str) -> Path:
        self.shots += 1
        path = ARTIFACTS / f"{self.shots:02d}-{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def pool_row(self, name: str) -> Any:
        return self.css(f'#pool-table tr[data-pool="{name}"]')

    def vol_names(self) -> list[str]:
        return [r.get_attribute("data-vol") for r in self.all("#volume-table tbody tr")]

    def cells(self, vol: str) -> dict[str, str]:
        """A volume row's cells, read in one go by the page (no stale elements)."""
        return dict(self.d.execute_script(
            "const r = document.querySelector(`#volume-table tr[data-vol='${arguments[0]}']`);"
            "const out = {};"
            "for (const td of r.querySelectorAll('td:not(.actions)'))"
            "  out[td.className] = td.textContent;"
            "return out;", vol))

    def dialog_open(self, dialog_id: str) -> bool:
        return bool(self.d.execute_script(
            f"return document.getElementById('{dialog_id}').open"))


def test_story_in_chromium(browser: WebDriver, tmp_path: Path) -> None:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    target = tmp_path / "images"
    with serving(tmp_path / "root") as server:
        page = Page(browser, server)
        browser.get(server.url + "/")
        page.wait("the page to load", lambda d: d.find_element(
            By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert page.css("#no-pools").is_displayed()
        page.shot("empty")

        # keyboard: Tab reaches "New pool…", Enter opens the dialog on its first field
        body = page.css("body")
        body.send_keys(Keys.TAB)
        for _ in range(10):
            if browser.switch_to.active_element.get_attribute("id") == "new-pool":
                break
            browser.switch_to.active_element.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "new-pool"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        page.wait("the pool dialog", lambda d: page.dialog_open("pool-dialog"))
        assert browser.switch_to.active_element.get_attribute("id") == "pool-name"

        # create a dir pool (built, not started)
        page.fill("#pool-name", "web")
        page.fill("#pool-target", str(target))
        assert page.css("#pool-build").is_selected()
        for hidden in ("#pool-source-host", "#pool-source-dev"):
            assert not page.css(hidden).is_displayed()
        page.shot("create-pool-dialog")
        page.click("#pool-create")
        page.wait("pool web listed", lambda d: page.all('#pool-table tr[data-pool="web"]'))
        page.wait("web inactive", lambda d: "inactive" in page.pool_row("web").text)
        page.wait("web built", lambda d: page.all('#job-list li[data-state="succeeded"]'))
        assert target.is_dir()

        # other types show their own fields
        page.click("#new-pool")
        select = page.css("#pool-type")
        for option in select.find_elements(By.TAG_NAME, "option"):
            if option.get_attribute("value") == "netfs":
                option.click()
        assert page.css("#pool-source-host").is_displayed()
        assert page.css("#pool-source-path").is_displayed()
        page.shot("create-netfs-dialog")
        for option in select.find_elements(By.TAG_NAME, "option"):
            if option.get_attribute("value") == "iscsi":
                option.click()
        for shown in ("#pool-source-host", "#pool-source-dev", "#pool-source-initiator",
                      "#pool-auth-type", "#pool-secret-usage"):
            assert page.css(shown).is_displayed(), shown
        assert not page.css("#pool-source-path").is_displayed()
        page.css("#pool-name").send_keys(Keys.ESCAPE)
        page.wait("dialog closed", lambda d: not page.dialog_open("pool-dialog"))

        # start it
        page.click('#pool-table tr[data-pool="web"] button[data-action="start"]')
        page.wait("web running", lambda d: "running" in page.pool_row("web").text)
        page.wait("usage bar", lambda d: page.all('#pool-table tr[data-pool="web"] .meter'))

        # create a volume, listed with its size
        page.click('#pool-table tr[data-pool="web"] button[data-action="volumes"]')
        page.wait("volumes shown", lambda d: page.css("#volumes").is_displayed())
        page.click("#new-volume")
        page.fill("#vol-name", "disk1")
        page.fill("#vol-capacity", "10M")
        page.click("#vol-create")
        page.wait("disk1 listed", lambda d: page.vol_names() == ["disk1"])
        assert page.cells("disk1") == {"name": "disk1", "format": "raw",
                                       "capacity": "10.00 MiB", "allocation": "10.00 MiB",
                                       "backing": "—", "path": str(target / "disk1")}
        assert (target / "disk1").stat().st_size == 10 << 20
        page.shot("volume-created")

        # clone it (a job, shown in the job list)
        page.click('tr[data-vol="disk1"] button[data-action="clone"]')
        assert page.css("#clone-name").get_attribute("value") == "disk1-clone"
        page.click("#clone-ok")
        page.wait("clone listed", lambda d: page.vol_names() == ["disk1", "disk1-clone"])
        page.wait("clone job done", lambda d: page.all('#job-list li[data-state="succeeded"]'))
        assert page.cells("disk1-clone")["capacity"] == "10.00 MiB"
        page.wait("volume count", lambda d: page.pool_row("web").find_element(
            By.CSS_SELECTOR, ".count").text == "2")
        page.shot("cloned")

        # upload a file into disk1 (progress as a job), then grow it
        data = os.urandom(1 << 20)
        source = tmp_path / "upload.bin"
        source.write_bytes(data)
        page.click('tr[data-vol="disk1"] button[data-action="upload"]')
        page.css("#upload-file").send_keys(str(source))
        page.click("#upload-ok")
        page.wait("upload done", lambda d: "Uploaded 1.00 MiB into disk1" in page.css(
            "#status").text)
        assert (target / "disk1").read_bytes()[: 1 << 20] == data
        page.click('tr[data-vol="disk1"] button[data-action="resize"]')
        page.fill("#resize-capacity", "20M")
        page.click("#resize-ok")
        page.wait("disk1 grown", lambda d: page.cells("disk1")["capacity"] == "20.00 MiB")
        assert (target / "disk1").stat().st_size == 20 << 20
        page.shot("uploaded-resized")

        # a narrow screen: rows become cards, nothing wider than the screen
        browser.set_window_size(390, 844)
        page.wait("narrow layout", lambda d: d.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"))
        page.shot("narrow")
        browser.execute_script("document.getElementById('volumes').scrollIntoView()")
        page.shot("narrow-volumes")
        browser.set_window_size(1280, 900)

        # deleting a pool holding volumes needs the second confirmation; cancel it
        page.click('#pool-table tr[data-pool="web"] button[data-action="delete"]')
        page.wait("first confirmation", lambda d: page.dialog_open("confirm-dialog"))
        page.click("#confirm-ok")
        page.wait("second confirmation", lambda d: page.dialog_open("confirm-dialog")
                  and "holds 2 volume" in page.css("#confirm-title").text)
        assert page.css("#confirm-typed").is_displayed()
        page.shot("second-confirmation")
        page.click("#confirm-ok")  # without typing the name: refused by the page
        page.wait("refusal", lambda d: "type “web” to confirm" in page.css(
            "#confirm-dialog .dialog-error").text)
        assert page.dialog_open("confirm-dialog")
        page.shot("second-confirmation-refused")
        page.click("#confirm-cancel")
        assert page.pool_row("web") and (target / "disk1").exists()

        # delete both volumes
        for name in ("disk1-clone", "disk1"):
            page.click(f'tr[data-vol="{name}"] button[data-action="delete"]')
            page.wait("confirm", lambda d: page.dialog_open("confirm-dialog"))
            page.click("#confirm-ok")
            page.wait(f"{name} gone", lambda d, n=name: n not in page.vol_names())
        assert page.css("#no-volumes").is_displayed()
        assert not (target / "disk1").exists()

        # delete the pool (stopped, storage removed, undefined)
        page.click('#pool-table tr[data-pool="web"] button[data-action="delete"]')
        page.wait("confirm", lambda d: page.dialog_open("confirm-dialog"))
        assert page.css("#confirm-option").is_selected()  # also undefine
        page.click("#confirm-ok")
        page.wait("pool gone", lambda d: not page.all('#pool-table tr[data-pool="web"]'))
        assert page.css("#no-pools").is_displayed()
        assert not target.exists()
        assert server("GET", "/api/pools").json() == []
        page.shot("pool-deleted")


def test_login_with_the_token(browser: WebDriver, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serving(root, listen="0.0.0.0:0") as server:
        page = Page(browser, server)
        browser.get(server.url + "/")
        page.wait("the login form", lambda d: page.css("#login").is_displayed())
        assert not page.css("#pools").is_displayed()
        assert browser.switch_to.active_element.get_attribute("id") == "login-token"
        page.shot("login")
        token = (root / "config" / "service-token").read_text().strip()
        page.css("#login-token").send_keys(token + Keys.ENTER)
        page.wait("the pools", lambda d: d.find_element(
            By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert page.css("#no-pools").is_displayed()
        page.click("#new-pool")
        page.fill("#pool-name", "tok")
        page.fill("#pool-target", str(tmp_path / "tok"))
        page.click("#pool-create")
        page.wait("pool listed", lambda d: page.all('#pool-table tr[data-pool="tok"]'))
        page.wait("pool built", lambda d: page.all('#job-list li[data-state="succeeded"]'))
        assert (tmp_path / "tok").is_dir()


def test_more_actions_in_chromium(browser: WebDriver, tmp_path: Path) -> None:
    """Snapshots, wipe, download, autostart, stop and undefine through the page."""
    target = tmp_path / "more"
    with serving(tmp_path / "root") as server:
        assert server("POST", "/api/pools", {"name": "more", "type": "dir",
                                             "target": str(target)}).status_code == 201
        assert server("POST", "/api/pools/more/start", {"build": True}).ok
        page = Page(browser, server)
        browser.get(server.url + "/")
        page.wait("the page", lambda d: d.find_element(
            By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        page.click('#pool-table tr[data-pool="more"] button[data-action="volumes"]')
        page.click("#new-volume")
        page.fill("#vol-name", "q")
        page.fill("#vol-capacity", "64M")
        for option in page.css("#vol-format").find_elements(By.TAG_NAME, "option"):
            if option.get_attribute("value") == "qcow2":
                option.click()
        page.click("#vol-create")
        page.wait("q listed", lambda d: page.vol_names() == ["q"])
        assert page.cells("q")["format"] == "qcow2"

        # snapshots: take one, see it, delete it
        page.click('tr[data-vol="q"] button[data-action="snapshots"]')
        page.wait("snapshots dialog", lambda d: page.dialog_open("snap-dialog"))
        page.fill("#snap-name", "before")
        page.click("#snap-create")
        page.wait("snapshot listed", lambda d: page.all('#snap-table tr[data-snap="before"]'))
        page.shot("snapshots")
        page.click('#snap-table tr[data-snap="before"] button[data-action="delete-snapshot"]')
        page.wait("snapshot gone", lambda d: not page.all('#snap-table tr[data-snap="before"]'))
        page.click("#snap-dialog button.cancel")
        page.wait("dialog closed", lambda d: not page.dialog_open("snap-dialog"))

        # wipe a raw volume (a job), then download it (a job, then the file)
        assert server("POST", "/api/pools/more/volumes", {"name": "r", "capacity": "4M"}).ok
        (target / "r").write_bytes(b"\x07" * (4 << 20))
        page.click("#reload")
        page.wait("r listed", lambda d: "r" in page.vol_names())
        page.click('tr[data-vol="r"] button[data-action="wipe"]')
        page.click("#wipe-ok")
        page.wait("wiped", lambda d: "Vol r wiped" in page.css("#status").text)
        assert (target / "r").read_bytes() == bytes(4 << 20)
        page.click('tr[data-vol="r"] button[data-action="download"]')
        page.wait("downloaded", lambda d: "Downloading r" in page.css("#status").text)
        jobs = server("GET", "/api/jobs").json()
        assert {j["op"]: j["state"] for j in jobs} == {
            "volume.wipe": "succeeded", "volume.download": "succeeded"}

        # autostart on, stop, undefine (storage kept)
        page.click('#pool-table tr[data-pool="more"] button[data-action="autostart"]')
        page.wait("autostart", lambda d: "marked as autostarted" in page.css("#status").text)
        assert server("GET", "/api/pools/more").json()["autostart"] is True
        page.click('#pool-table tr[data-pool="more"] button[data-action="stop"]')
        page.wait("stopped", lambda d: "inactive" in page.pool_row("more").text)
        assert not page.css("#volumes").is_displayed()
        page.click('#pool-table tr[data-pool="more"] button[data-action="undefine"]')
        page.click("#confirm-ok")
        page.wait("undefined", lambda d: not page.all('#pool-table tr[data-pool="more"]'))
        assert (target / "q").exists()
        page.shot("undefined")
