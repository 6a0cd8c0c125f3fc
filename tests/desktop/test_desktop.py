"""End-to-end test of the desktop app: the real window under Xvfb, driven
through WebDriver (tauri-driver + WebKitWebDriver), against the gateway
embedded in the app.

Run through tests/desktop/run.sh, which installs what is needed, builds the
app and starts Xvfb. Environment:
  APP             the built desktop binary (required)
  ARTIFACTS       where screenshots go (default: artifacts/desktop)
  TAURI_DRIVER    the tauri-driver binary (default: tauri-driver on PATH)

Prints one line per test and a final "N passed, M failed"; exits 1 on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
APP = os.environ.get("APP", "")
ARTIFACTS = Path(os.environ.get("ARTIFACTS", ROOT / "artifacts" / "desktop"))
TAURI_DRIVER = os.environ.get("TAURI_DRIVER", shutil.which("tauri-driver") or "tauri-driver")
WAIT = 20


# --------------------------------------------------------------------------
# helpers


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port, never one already handed out: the kernel may offer a
    just-closed port again, and the app's admin listener and WebKit's
    inspector (the driver's native port) once got the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(what: str, fn, timeout: float = WAIT, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def http(method: str, url: str, body: dict | None = None, token: str | None = None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    except ConnectionRefusedError:
        return True
    return False


def chat(listen: str, key: str, text: str):
    return http(
        "POST",
        f"http://{listen}/v1/chat/completions",
        {"model": "assisters-echo", "messages": [{"role": "user", "content": text}]},
        token=key,
    )


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def screen(name: str) -> None:
    """The whole X screen (dialogs, several windows), with ImageMagick's import."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["import", "-window", "root", str(ARTIFACTS / f"{name}.png")],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def xdotool(*args: str) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=10).stdout.strip()


def xpath_literal(s: str) -> str:
    return f'"{s}"' if '"' not in s else f"'{s}'"


class Notifications:
    """The desktop's notification server (org.freedesktop.Notifications on the
    session bus, as a notification daemon provides it): records every
    notification the app sends, so the test sees what a person would."""

    def __init__(self) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        self.seen: list[tuple[str, str]] = []
        self.conn = open_dbus_connection(bus="SESSION")
        reply = self.conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications", 4))
        assert reply.body[0] == 1, f"cannot own org.freedesktop.Notifications: {reply.body}"
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType, new_error, new_method_return

        while not self.stop:
            try:
                msg = self.conn.receive(timeout=0.5)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - the bus went away
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "Notify":
                _app, _replaces, _icon, summary, body, *_ = msg.body
                self.seen.append((summary, body))
                print(f"     notification: {summary} — {body}", flush=True)
                self.conn.send(new_method_return(msg, "u", (len(self.seen),)))
            elif member == "GetCapabilities":
                self.conn.send(new_method_return(msg, "as", (["body"],)))
            elif member == "GetServerInformation":
                self.conn.send(new_method_return(msg, "ssss", ("test", "assisters", "1", "1.2")))
            else:
                self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))

    def wait_for(self, what: str, pred) -> tuple[str, str]:
        return wait_for(f"a notification {what}", lambda: next((n for n in self.seen if pred(*n)), None), timeout=30)

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.conn.close()


class Ui:
    """Finds things the way a person does: by role-ish names and visible text."""

    def __init__(self, driver):
        self.d = driver

    def wait(self, cond, timeout=WAIT):
        return WebDriverWait(self.d, timeout).until(cond)

    def visible(self, xpath: str, timeout=WAIT) -> WebElement:
        return self.wait(EC.visibility_of_element_located((By.XPATH, xpath)), timeout)

    def heading(self, text: str, timeout=WAIT) -> WebElement:
        return self.visible(f"//h1[normalize-space()={xpath_literal(text)}]", timeout)

    def dialog(self, title: str) -> WebElement:
        return self.visible(
            f"//dialog[@open][.//*[self::h1 or self::h2][normalize-space()={xpath_literal(title)}]]"
        )

    def button(self, name: str, within: WebElement | None = None) -> WebElement:
        lit = xpath_literal(name)
        xp = f".//button[@aria-label={lit} or normalize-space()={lit}]"
        root = within if within is not None else self.d
        return self.wait(lambda _: next((b for b in root.find_elements(By.XPATH, xp) if b.is_displayed() and b.is_enabled()), None))

    def nav(self, name: str) -> None:
        link = self.visible(f"//nav[@aria-label='Main']//a[normalize-space()={xpath_literal(name)}]")
        link.click()

    def row(self, text: str) -> WebElement:
        return self.visible(f"//tr[.//*[contains(normalize-space(), {xpath_literal(text)})]]")

    def cell(self, row_text: str, column: str) -> str:
        """The text of one cell of a table row, by the column's header."""
        row = self.row(row_text)
        table = row.find_element(By.XPATH, "./ancestor::table[1]")
        headers = [h.text.strip() for h in table.find_elements(By.XPATH, ".//thead//th")]
        cells = row.find_elements(By.XPATH, "./td|./th")
        return cells[headers.index(column)].text.strip()

    def invoke(self, cmd: str, args: dict | None = None):
        """Calls one of the app's Tauri commands from the page, as the dashboard does."""
        return self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1] || {})"
            ".then((v) => done({ok: v}), (e) => done({err: String(e)}));",
            cmd,
            args or {},
        )


# --------------------------------------------------------------------------
# the session


class Session:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="assisters-desktop-"))
        self.data_dir = self.tmp / "data"
        (self.tmp / "home").mkdir()
        self.listen = f"127.0.0.1:{free_port()}"
        self.admin = f"127.0.0.1:{free_port()}"
        self.env = dict(os.environ)
        self.env.update(
            {
                "ASSISTERS_DATA_DIR": str(self.data_dir),
                "ASSISTERS_LISTEN": self.listen,
                "ASSISTERS_ADMIN_LISTEN": self.admin,
                # Keep the test away from the person's own settings and autostart entries.
                "XDG_CONFIG_HOME": str(self.tmp / "config"),
                "HOME": str(self.tmp / "home"),
                "RUST_LOG": os.environ.get("RUST_LOG", "info"),
                "NO_AT_BRIDGE": "1",
                # Look for keys about to expire every 2 s instead of hourly.
                "GATEWAY_DESKTOP_EXPIRY_CHECK": "2",
            }
        )
        self.notifications = Notifications()
        self.driver_log = open(ARTIFACTS / "tauri-driver.log", "w")  # noqa: SIM115
        port = free_port()
        native = free_port()
        self.driver_proc = subprocess.Popen(
            [TAURI_DRIVER, "--port", str(port), "--native-port", str(native)],
            env=self.env,
            stdout=self.driver_log,
            stderr=subprocess.STDOUT,
        )
        for p in (port, native):  # tauri-driver, then the WebKitWebDriver it starts
            wait_for(f"a WebDriver on port {p}", lambda p=p: socket.create_connection(("127.0.0.1", p), 1).close() or True)
        opts = ArgOptions()
        opts.set_capability("browserName", "wry")
        opts.set_capability("tauri:options", {"application": APP})
        self.driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=opts)
        self.driver.set_script_timeout(15)
        self.ui = Ui(self.driver)

    def close(self) -> None:
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001
            pass
        self.driver_proc.terminate()
        try:
            self.driver_proc.wait(10)
        except subprocess.TimeoutExpired:
            self.driver_proc.kill()
        self.driver_log.close()
        self.notifications.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# tests, in order; each gets the shared context


def test_window_shows_dashboard(s: Session, ctx: dict) -> None:
    ui = s.ui
    ui.heading("Overview", timeout=40)
    endpoint = f"http://{s.listen}/v1"
    ui.visible(f"//header//*[normalize-space()={xpath_literal(endpoint)}]")
    runtime = wait_for("runtime.json", lambda: json.loads((s.data_dir / "runtime.json").read_text()))
    assert runtime["listen"] == s.listen, runtime
    assert runtime["admin_listen"] == s.admin, runtime
    screenshot(s.driver, "01-overview")


def test_status_and_session_commands(s: Session, ctx: dict) -> None:
    st = s.ui.invoke("gateway_status")
    assert "ok" in st, st
    st = st["ok"]
    assert st["state"] in ("running", "degraded"), st
    assert st["endpoint"] == f"http://{s.listen}/v1", st
    assert st["data_dir"] == str(s.data_dir), st
    # bundled: the app's own copy of ui/dist; listener: served by the admin listener.
    mode = st["ui"]
    print(f"     dashboard shown from: {mode} ({s.driver.current_url})")
    if mode == "bundled":
        assert s.driver.current_url.startswith(("tauri://localhost", "http://tauri.localhost")), s.driver.current_url
    else:
        assert mode == "listener" and s.driver.current_url.startswith(f"http://{s.admin}/"), (mode, s.driver.current_url)
    sess = s.ui.invoke("admin_session")["ok"]
    assert sess["base_url"] == f"http://{s.admin}", sess
    assert sess["token"] == (s.data_dir / "admin-token").read_text().strip()
    # The token is handed over by IPC only: not in the URL, not in web storage.
    url = s.driver.current_url
    assert sess["token"] not in url, url
    stored = s.driver.execute_script(
        "return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), document.cookie])"
    )
    assert sess["token"] not in stored, "admin token found in web storage"
    ctx["admin_token"] = sess["token"]


def test_links_out_leave_the_window_alone(s: Session, ctx: dict) -> None:
    """A target=_blank link (the admin API document) goes to the system browser."""
    before = s.driver.current_url
    handles = len(s.driver.window_handles)
    s.ui.visible("//header//a[normalize-space()='Admin API']").click()
    time.sleep(1)
    assert s.driver.current_url == before, s.driver.current_url
    assert len(s.driver.window_handles) == handles, s.driver.window_handles
    s.ui.heading("Overview")


def test_create_key_in_ui(s: Session, ctx: dict) -> None:
    ui = s.ui
    ui.nav("Keys")
    ui.heading("API keys")
    ui.button("Create key").click()
    dlg = ui.dialog("Create API key")
    name = dlg.find_element(By.ID, "key-name")
    name.clear()
    name.send_keys("desktop e2e")
    screenshot(s.driver, "02-create-key-dialog")
    ui.button("Create key", within=dlg).click()

    def outcome():
        for a in dlg.find_elements(By.XPATH, ".//*[@role='alert']"):
            if a.is_displayed() and a.text.strip():
                raise AssertionError(f"the dashboard showed an error: {a.text.strip()}")
        return ui.d.find_elements(By.XPATH, "//dialog[@open][.//h2[normalize-space()='Save your new key'] or .//h1[normalize-space()='Save your new key']]")

    wait_for("the new key", outcome)
    shown = ui.dialog("Save your new key")
    secret = wait_for(
        "the new secret",
        lambda: shown.find_element(By.ID, "new-key-secret").get_attribute("value"),
    )
    assert secret.startswith("ask_"), secret
    screenshot(s.driver, "03-key-created")
    ui.button("Done", within=shown).click()
    ui.wait(EC.invisibility_of_element(shown))
    row = ui.row("desktop e2e")
    assert "Active" in row.text, row.text
    assert "Never" in row.text, row.text
    ctx["secret"] = secret


def test_gateway_call_with_the_key(s: Session, ctx: dict) -> None:
    s.ui.nav("Overview")
    s.ui.heading("Overview")
    status, body = chat(s.listen, ctx["secret"], "hello from the desktop test")
    assert status == 200, (status, body)
    msg = json.loads(body)["choices"][0]["message"]["content"]
    assert msg == "hello from the desktop test", msg
    # The call shows up in the live traffic table, under the key's name.
    row = s.ui.row("desktop e2e")
    s.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    cells = row.get_attribute("textContent")
    assert "assisters-echo" in cells and "200" in cells, cells
    screenshot(s.driver, "03b-live-traffic")


def test_status_counts_requests_per_minute(s: Session, ctx: dict) -> None:
    """What the tray shows next to the state. A refused call counts too."""
    assert chat(s.listen, "ask_not_a_key", "counted")[0] == 401
    wait_for(
        "requests_per_minute >= 1",
        lambda: (s.ui.invoke("gateway_status")["ok"].get("requests_per_minute") or 0) >= 1,
        timeout=30,
        interval=1,
    )


def test_key_list_shows_last_used(s: Session, ctx: dict) -> None:
    ui = s.ui

    def used() -> bool:
        # Re-open the page: the list is loaded when the page opens.
        ui.nav("Overview")
        ui.heading("Overview")
        ui.nav("Keys")
        ui.heading("API keys")
        return ui.cell("desktop e2e", "Last used") not in ("", "Never")

    wait_for("the key list to show the key as used", used, timeout=30, interval=1)
    last = ui.cell("desktop e2e", "Last used")
    assert last == "just now" or "ago" in last, last
    screenshot(s.driver, "04-key-last-used")


def test_revoke_key_in_ui(s: Session, ctx: dict) -> None:
    ui = s.ui
    ui.button("Revoke desktop e2e").click()
    dlg = ui.dialog("Revoke this key?")
    screenshot(s.driver, "05-revoke-confirm")
    ui.button("Revoke key", within=dlg).click()
    ui.wait(EC.invisibility_of_element(dlg))
    wait_for("the row to say Revoked", lambda: "Revoked" in ui.row("desktop e2e").text)
    screenshot(s.driver, "06-key-revoked")
    status, body = chat(s.listen, ctx["secret"], "after revoke")
    assert status == 401, (status, body)


def test_pause_and_resume(s: Session, ctx: dict) -> None:
    health = f"http://{s.listen}/healthz"
    assert http("GET", health)[0] == 200
    st = s.ui.invoke("stop")
    assert st.get("ok", {}).get("state") == "paused", st
    wait_for("the gateway API to stop", lambda: refused(health))
    # Paused is the gateway API only: the dashboard and admin API still work.
    assert http("GET", f"http://{s.admin}/admin/keys", token=ctx["admin_token"])[0] == 200
    s.ui.nav("Keys")
    s.ui.heading("API keys")
    s.ui.row("desktop e2e")
    # The sidebar says so (it said "Running" throughout); it checks every 10 s.
    s.ui.visible("//*[@data-liveness='paused'][contains(., 'Gateway API paused')]")
    st = s.ui.invoke("start")
    assert st.get("ok", {}).get("state") in ("running", "degraded"), st
    wait_for("the gateway API to answer again", lambda: http("GET", health)[0] == 200)
    # Same ports, same keys: the admin API still knows the revoked key.
    status, body = http("GET", f"http://{s.admin}/admin/keys", token=ctx["admin_token"])
    assert status == 200, (status, body)
    if "secret" in ctx:
        assert "desktop e2e" in body, body
    # The dashboard is usable again.
    s.ui.nav("Overview")
    s.ui.heading("Overview")
    s.ui.visible("//*[@data-liveness='running']")
    screenshot(s.driver, "07-after-resume")


def test_master_key_in_the_os_secret_store(s: Session, ctx: dict) -> None:
    """The test's session bus runs gnome-keyring (Secret Service): the key is there, not on disk."""
    status, body = http("GET", f"http://{s.admin}/admin/crypto", token=ctx["admin_token"])
    assert status == 200, (status, body)
    storage = json.loads(body)["storage"]
    assert storage["kind"] == "os_secret_store", storage
    assert "warning" not in storage, storage
    assert not (s.data_dir / "master.key").exists()
    assert (s.data_dir / "master.key.location").exists()
    found = subprocess.run(
        ["secret-tool", "search", "service", "assisters-gateway-master-key"],
        capture_output=True, text=True, timeout=10,
    )
    assert str(s.data_dir) in found.stdout + found.stderr, (found.stdout, found.stderr)


def test_incident_notifications(s: Session, ctx: dict) -> None:
    """An incident opened and resolved reaches the desktop as notifications."""
    status, body = http(
        "POST", f"http://{s.admin}/admin/incidents",
        {"name": "Desktop test outage", "impact": "major", "body": "Upstream unreachable."},
        token=ctx["admin_token"],
    )
    assert status in (200, 201), (status, body)
    incident = json.loads(body)
    s.notifications.wait_for("of the new incident", lambda t, b: t == "New incident: Desktop test outage" and "Upstream unreachable" in b)
    status, body = http(
        "POST", f"http://{s.admin}/admin/incidents/{incident['id']}/updates",
        {"status": "resolved", "body": "Fixed."}, token=ctx["admin_token"],
    )
    assert status in (200, 201), (status, body)
    s.notifications.wait_for("of the resolution", lambda t, b: t == "Resolved: Desktop test outage")


def test_expiring_key_notification(s: Session, ctx: dict) -> None:
    status, body = http(
        "POST", f"http://{s.admin}/admin/keys", {"name": "soon gone", "expires_in": "1d"}, token=ctx["admin_token"]
    )
    assert status in (200, 201), (status, body)
    title, body = s.notifications.wait_for("about the expiring key", lambda t, b: "soon gone" in t)
    assert "expires soon" in title and "hours" in body, (title, body)


def visible_windows(title: str) -> list[str]:
    return xdotool("search", "--onlyvisible", "--name", f"^{title}$").split()


def request_close(wid: int) -> None:
    """What a window manager sends when the person clicks the close button."""
    from Xlib import X, display, protocol

    d = display.Display()
    w = d.create_resource_object("window", wid)
    ev = protocol.event.ClientMessage(
        window=w,
        client_type=d.intern_atom("WM_PROTOCOLS"),
        data=(32, [d.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]),
    )
    w.send_event(ev, event_mask=X.NoEventMask)
    d.flush()
    d.close()


def test_closing_the_window_keeps_the_gateway(s: Session, ctx: dict) -> None:
    wait_for("the visible window", lambda: visible_windows("Assisters Gateway"))

    def hidden() -> bool:
        shown = visible_windows("Assisters Gateway")
        for wid in shown:  # (again, if the first request came too early)
            request_close(int(wid))
        return not shown

    wait_for("the window to hide", hidden, interval=1)
    assert http("GET", f"http://{s.listen}/healthz")[0] == 200


def test_second_launch_shows_the_first(s: Session, ctx: dict) -> None:
    """Single instance: a second launch brings back the first one's window and exits."""
    second = subprocess.run([APP], env=s.env, capture_output=True, timeout=30)
    assert second.returncode == 0, (second.returncode, second.stderr[-2000:])
    wait_for("the window to come back", lambda: visible_windows("Assisters Gateway"))
    assert http("GET", f"http://{s.listen}/healthz")[0] == 200
    s.ui.visible("//h1")
    screenshot(s.driver, "08-window-back")


def test_no_webdriver_log_errors(s: Session, ctx: dict) -> None:
    """The page logged no CSP violations or uncaught errors (where the driver can tell)."""
    try:
        logs = s.driver.get_log("browser")
    except (WebDriverException, AttributeError):
        return  # WebKitWebDriver has no log endpoint; nothing to check
    bad = [l for l in logs if l.get("level") == "SEVERE"]
    assert not bad, bad


TESTS = [
    test_window_shows_dashboard,
    test_status_and_session_commands,
    test_links_out_leave_the_window_alone,
    test_create_key_in_ui,
    test_gateway_call_with_the_key,
    test_status_counts_requests_per_minute,
    test_key_list_shows_last_used,
    test_revoke_key_in_ui,
    test_pause_and_resume,
    test_master_key_in_the_os_secret_store,
    test_incident_notifications,
    test_expiring_key_notification,
    test_closing_the_window_keeps_the_gateway,
    test_second_launch_shows_the_first,
    test_no_webdriver_log_errors,
]


# --------------------------------------------------------------------------
# without WebDriver: what happens before the window exists


def app_processes() -> list[int]:
    """Running instances of the app binary under test."""
    target = os.path.realpath(APP)
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and os.path.realpath(d / "exe") == target:
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


def no_app_running() -> None:
    """A launch while another instance still runs (the WebDriver session's,
    shutting down gracefully) would only focus that one and exit: single
    instance. Wait for it to be gone. Ending the WebDriver session closes the
    window, and a closed window leaves the app running in the tray (by
    design), so an instance still there after a while is asked to quit the
    way a service manager would: SIGTERM, which it handles gracefully."""
    try:
        wait_for("the previous app instance to exit", lambda: not app_processes(), timeout=15, interval=0.5)
        return
    except AssertionError:
        pass
    for pid in app_processes():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    wait_for("the previous app instance to quit on SIGTERM", lambda: not app_processes(), timeout=45, interval=0.5)


def launch_standalone(tmp: Path, listen: str, log_name: str):
    """The app started by hand, not by WebDriver: data and config under `tmp`,
    the gateway on `listen`, its output in `ARTIFACTS/log_name`."""
    env = dict(os.environ)
    env.update(
        {
            "ASSISTERS_DATA_DIR": str(tmp / "data"),
            "ASSISTERS_LISTEN": listen,
            "ASSISTERS_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "NO_AT_BRIDGE": "1",
        }
    )
    log = open(ARTIFACTS / log_name, "w")  # noqa: SIM115
    return subprocess.Popen([APP], env=env, stdout=log, stderr=subprocess.STDOUT), log


def test_port_taken_dialog() -> None:
    """A taken port is explained in a dialog, which offers another one."""
    no_app_running()
    tmp = Path(tempfile.mkdtemp(prefix="assisters-desktop-port-"))
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    app, log = launch_standalone(tmp, f"127.0.0.1:{taken}", "port-taken-app.log")
    try:
        wid = wait_for("the 'Port already in use' dialog", lambda: xdotool("search", "--name", "Port already in use"), timeout=30)
        wid = wid.split()[0]
        time.sleep(0.5)  # let it paint
        screen("09-port-taken-dialog")
        # The default button is "Use port N".
        xdotool("windowfocus", "--sync", wid)
        xdotool("key", "--window", wid, "Return")
        runtime = wait_for(
            "runtime.json",
            lambda: json.loads((tmp / "data" / "runtime.json").read_text()),
            timeout=30,
        )
        listen = runtime["listen"]
        assert not listen.endswith(f":{taken}"), runtime
        assert http("GET", f"http://{listen}/healthz")[0] == 200
        wait_for("the dashboard window", lambda: xdotool("search", "--name", "^Assisters Gateway$"), timeout=30)
        time.sleep(2)
        screen("10-after-choosing-another-port")
    finally:
        app.terminate()
        try:
            app.wait(15)
        except subprocess.TimeoutExpired:
            app.kill()
        log.close()
        blocker.close()
        shutil.rmtree(tmp, ignore_errors=True)


def trickled_admin_request(admin: str, token: str, body: bytes, seconds: float) -> dict:
    """Sends `POST /admin/keys` with its body trickled over `seconds`, in a
    thread; the returned dict gets the raw answer (or the error) at the end."""
    result: dict = {}

    def run() -> None:
        try:
            host, port = admin.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=60) as c:
                head = (
                    f"POST /admin/keys HTTP/1.1\r\nHost: {admin}\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                c.sendall(head.encode())
                for b in body:
                    c.sendall(bytes([b]))
                    time.sleep(seconds / len(body))
                answer = b""
                while chunk := c.recv(65536):
                    answer += chunk
                result["answer"] = answer.decode(errors="replace")
        except Exception as e:  # noqa: BLE001 - reported by the test
            result["error"] = repr(e)

    result["thread"] = threading.Thread(target=run, daemon=True)
    result["thread"].start()
    return result


def test_quit_on_close_when_asked() -> None:
    """With "Keep running when the window closes" off, closing the window
    quits the app, after the request in flight is answered. The quit spans
    the shell's health checks (every 5 s), whose tray updates once waited on
    the main thread while the main thread waited on the shutdown: a hang."""
    no_app_running()
    tmp = Path(tempfile.mkdtemp(prefix="assisters-desktop-close-"))
    ident = json.loads((ROOT / "tauri.conf.json").read_text())["identifier"]
    prefs = tmp / "config" / ident / "desktop.json"
    prefs.parent.mkdir(parents=True)
    prefs.write_text(json.dumps({"keep_running_on_close": False}))
    listen = f"127.0.0.1:{free_port()}"
    app, log = launch_standalone(tmp, listen, "quit-on-close-app.log")
    try:
        wait_for("the gateway", lambda: http("GET", f"http://{listen}/healthz")[0] == 200, timeout=30)
        wid = wait_for("the window", lambda: visible_windows("Assisters Gateway"), timeout=30)[0]
        runtime = json.loads((tmp / "data" / "runtime.json").read_text())
        token = (tmp / "data" / "admin-token").read_text().strip()
        body = json.dumps({"name": "made while quitting"}).encode() + b" " * 20
        inflight = trickled_admin_request(runtime["admin_listen"], token, body, seconds=8)
        time.sleep(1)

        def gone() -> bool:
            if app.poll() is None:
                request_close(int(wid))
            return app.poll() is not None

        wait_for("the app to quit", gone, timeout=60, interval=1)
        assert app.returncode == 0, app.returncode
        assert refused(f"http://{listen}/healthz")
        inflight["thread"].join(10)
        answer = inflight.get("answer", inflight.get("error", ""))
        assert answer.startswith("HTTP/1.1 201"), answer[:300]
        assert '"key":"ask_' in answer, answer[:300]
    except Exception:
        log.flush()
        tail = (ARTIFACTS / "quit-on-close-app.log").read_text(errors="replace").splitlines()[-15:]
        print("     app log (last lines):", *tail, sep="\n       ")
        raise
    finally:
        if app.poll() is None:
            app.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


STANDALONE = [test_port_taken_dialog, test_quit_on_close_when_asked]


def main() -> int:
    if not APP or not Path(APP).exists():
        print(f"APP={APP!r} is not a built desktop binary")
        print("0 passed, 1 failed")
        return 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    passed = failed = 0
    ctx: dict = {}
    try:
        session = Session()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print(f"FAIL start the app through WebDriver: {e}")
        print(f"0 passed, {len(TESTS) + len(STANDALONE)} failed")
        return 1
    try:
        for t in TESTS:
            name = t.__name__.removeprefix("test_").replace("_", " ")
            try:
                t(session, ctx)
                passed += 1
                print(f"PASS {name}", flush=True)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc()
                try:
                    screenshot(session.driver, f"fail-{t.__name__}")
                    # Start the next test from a fresh page (no dialog left open).
                    session.driver.refresh()
                    session.ui.visible("//h1")
                except Exception:  # noqa: BLE001
                    pass
    finally:
        session.close()
    for t in STANDALONE:
        name = t.__name__.removeprefix("test_").replace("_", " ")
        try:
            t()
            passed += 1
            print(f"PASS {name}", flush=True)
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            screen(f"fail-{t.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
