"""Drives Sextant's web UI in headless Chromium (Debian `chromium`, Python
`playwright`) against a running agent, changing the registry through the
HTTP API and expecting every change on screen without reloading the page.

    python3 ui_check.py http://127.0.0.1:8500 target/ui-screenshots

Prints `PASS  <step>` for every step, `SCREENSHOT <path>` for every
screenshot, and exits non-zero (with the failing expectation) on the first
step that fails.
"""

import json
import os
import sys
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Every expectation waits up to this long for the page to catch up.
TIMEOUT_MS = 15_000


class Api:
    """Sextant's Consul-compatible HTTP API, for the changes the UI must show."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def ok(self, method, path, body=None):
        status, reply = self.call(method, path, body)
        if status != 200:
            raise AssertionError(f"{method} {path}: HTTP {status}: {reply!r}")
        return reply

    def register(self, service_id, name, port, tags=(), meta=None, address="10.0.0.1"):
        self.ok(
            "PUT",
            "/v1/agent/service/register",
            {
                "ID": service_id,
                "Name": name,
                "Address": address,
                "Port": port,
                "Tags": list(tags),
                "Meta": meta or {},
                # A TTL check: the test alone decides when it passes or fails.
                "Check": {"TTL": "10m", "Name": f"{name} heartbeat"},
            },
        )

    def check(self, verb, service_id, note=""):
        query = f"?note={urllib.request.quote(note)}" if note else ""
        self.ok("PUT", f"/v1/agent/check/{verb}/service:{service_id}{query}")


def step(name):
    print(f"PASS  {name}", flush=True)


def main():
    base, shots = sys.argv[1].rstrip("/"), sys.argv[2]
    os.makedirs(shots, exist_ok=True)
    api = Api(base)

    def screenshot(page, name):
        path = os.path.abspath(os.path.join(shots, f"{name}.png"))
        # The body, not the viewport: as tall as the content, no blank space.
        page.locator("body").screenshot(path=path)
        print(f"SCREENSHOT {path}", flush=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 720})
        expect.set_options(timeout=TIMEOUT_MS)
        page_errors = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        # Chromium logs every 404 as a console error, but a 404 is how the
        # KV API answers for a key that is gone; anything else is a failure.
        # While the test cuts the connection on purpose, failed loads are expected.
        expected_404 = "the server responded with a status of 404"
        outage = {"on": False}
        page.on(
            "console",
            lambda message: message.type == "error"
            and expected_404 not in message.text
            and not outage["on"]
            and page_errors.append(message.text),
        )

        # `/` leads to the UI, which opens on the services page.
        page.goto(base + "/")
        expect(page).to_have_url(base + "/ui/")
        expect(page.get_by_role("heading", name="Services", level=1)).to_be_visible()
        expect(page.locator("#connection")).to_have_text("Live")
        # A reload or a new document would drop this marker: it proves that
        # everything below arrived through the page's own long polls.
        page.evaluate("window.sextantUiMarker = 'still the same page'")
        step("the UI loads at / and /ui/ and connects")

        # A service appears.
        api.register("web-1", "web", 8080, tags=["v1", "blue"], meta={"version": "1.4.2"})
        web = page.locator('tr[data-service="web"]')
        expect(web).to_be_visible()
        expect(web.locator('[data-count="instances"]')).to_have_text("1")
        # Consul starts a TTL check critical until its first pass.
        expect(web.locator('[data-count="critical"]')).to_have_text("1")
        api.check("pass", "web-1", "serving")
        expect(web.locator('[data-count="passing"]')).to_have_text("1")
        expect(web.locator('[data-count="critical"]')).to_have_text("0")
        step("a registered service appears, passing, without a reload")

        # A few more services so the overview shows every state.
        for i, status in enumerate(["pass", "pass"], start=1):
            api.register(f"api-{i}", "api", 9000 + i, tags=["grpc"], address=f"10.0.1.{i}")
            api.check(status, f"api-{i}")
        for i in range(1, 4):
            track = "canary" if i == 3 else "stable"
            api.register(f"auth-{i}", "auth", 9100 + i, tags=["v3", track], address=f"10.0.3.{i}")
            api.check("pass", f"auth-{i}")
        api.register("payments-1", "payments", 7001, tags=["v2"], address="10.0.2.1")
        api.check("pass", "payments-1")
        api.register("payments-2", "payments", 7002, tags=["v2"], address="10.0.2.2")
        api.check("warn", "payments-2", "p99 latency 870 ms")
        payments = page.locator('tr[data-service="payments"]')
        expect(payments.locator('[data-count="warning"]')).to_have_text("1")
        expect(page.locator('tr[data-service="api"] [data-count="passing"]')).to_have_text("2")

        # The instance goes critical: the overview shows it.
        api.check("fail", "web-1", "connection refused: 10.0.0.1:8080")
        expect(web.locator('[data-count="critical"]')).to_have_text("1")
        expect(web.locator('[data-count="passing"]')).to_have_text("0")
        step("the instance going critical shows on the services page")
        screenshot(page, "services")

        # The service's page: the instance, its check and the check's output.
        web.get_by_role("link", name="web").click()
        expect(page).to_have_url(base + "/ui/#/services/web")
        instance = page.locator('section[data-instance="web-1"]')
        expect(instance).to_have_attribute("data-status", "critical")
        expect(instance).to_contain_text("10.0.0.1:8080")
        expect(instance).to_contain_text("version=1.4.2")
        check = instance.locator('tr[data-check="service:web-1"]')
        expect(check.locator(".badge")).to_have_text("critical")
        expect(check).to_contain_text("connection refused: 10.0.0.1:8080")
        api.check("pass", "web-1", "serving again")
        expect(check.locator(".badge")).to_have_text("passing")
        expect(check).to_contain_text("serving again")
        api.check("fail", "web-1", "connection refused: 10.0.0.1:8080")
        expect(instance).to_have_attribute("data-status", "critical")
        step("the service page shows the instance's checks and outputs as they change")
        screenshot(page, "service")

        # Deregistration: gone from the service page and from the overview.
        api.ok("PUT", "/v1/agent/service/deregister/web-1")
        expect(page.locator("#no-instances")).to_be_visible()
        page.get_by_role("link", name="← All services").click()
        expect(page.locator('tr[data-service="api"]')).to_be_visible()
        expect(web).to_have_count(0)
        api.register("web-2", "web", 8081)
        expect(web).to_have_count(1)
        api.ok("PUT", "/v1/agent/service/deregister/web-2")
        expect(web).to_have_count(0)
        step("a deregistered service disappears without a reload")

        # The connection fails: the page says so, retries with backoff, and
        # catches up with what changed meanwhile once requests go through.
        summaries = "**/v1/sextant/ui/services*"
        outage["on"] = True
        page.route(summaries, lambda route: route.abort())
        api.register("batch-1", "batch", 6001)
        expect(page.locator("#connection")).to_contain_text("Disconnected")
        api.register("report-1", "report", 6002)
        page.unroute(summaries)
        expect(page.locator("#connection")).to_have_text("Live")
        expect(page.locator('tr[data-service="report"]')).to_be_visible()
        outage["on"] = False
        for service_id in ["batch-1", "report-1"]:
            api.ok("PUT", f"/v1/agent/service/deregister/{service_id}")
        expect(page.locator('tr[data-service="report"]')).to_have_count(0)
        step("a lost connection is shown, retried and caught up")

        # Nodes and Raft peers, with the leader marked.
        page.get_by_role("link", name="Nodes").click()
        leader_address = json.loads(api.ok("GET", "/v1/status/leader"))
        assert leader_address, "the agent knows no leader"
        peers = page.locator("#raft-peers")
        leader_row = peers.locator('tr[data-leader="true"]')
        expect(leader_row).to_have_count(1)
        expect(leader_row).to_contain_text(leader_address)
        expect(leader_row.locator(".badge.leader")).to_have_text("leader")
        expect(page.locator("#nodes tbody tr")).not_to_have_count(0)
        step("the Raft peers view marks the leader")
        screenshot(page, "nodes")

        # KV: browse to a key written through the API and edit it in the UI.
        api.ok("PUT", "/v1/kv/config/app/mode", b"v1")
        page.get_by_role("link", name="Key/Value").click()
        page.locator('a[data-folder="config/"]').click()
        page.locator('a[data-folder="config/app/"]').click()
        expect(page).to_have_url(base + "/ui/#/kv/config/app/")
        page.locator('button[data-key="config/app/mode"]').click()
        expect(page.locator("#kv-value")).to_have_value("v1")
        page.locator("#kv-value").fill("v2 — edited in the browser")
        page.locator("#kv-save").click()
        expect(page.locator("#kv-message")).to_have_text("Saved config/app/mode.")
        stored = api.ok("GET", "/v1/kv/config/app/mode?raw").decode()
        assert stored == "v2 — edited in the browser", f"the API reads {stored!r}"
        step("a KV edit made in the UI is visible through the HTTP API")

        page.locator("#kv-new").click()
        expect(page.locator("#kv-key")).to_have_value("config/app/")
        page.locator("#kv-key").fill("config/app/color")
        page.locator("#kv-value").fill("blue")
        page.locator("#kv-save").click()
        expect(page.locator('button[data-key="config/app/color"]')).to_be_visible()
        assert api.ok("GET", "/v1/kv/config/app/color?raw") == b"blue"
        # A change made elsewhere shows in the open editor and in the listing.
        api.ok("PUT", "/v1/kv/config/app/color", b"green")
        expect(page.locator("#kv-value")).to_have_value("green")
        api.ok("PUT", "/v1/kv/config/app/replicas", b"3")
        expect(page.locator('button[data-key="config/app/replicas"]')).to_be_visible()
        step("keys created in the UI and through the API show live")
        screenshot(page, "kv")

        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#kv-delete").click()
        expect(page.locator("#kv-message")).to_have_text("Deleted config/app/color.")
        expect(page.locator('button[data-key="config/app/color"]')).to_have_count(0)
        status, _ = api.call("GET", "/v1/kv/config/app/color")
        assert status == 404, f"the deleted key still answers HTTP {status}"
        step("a key deleted in the UI is gone from the HTTP API")

        marker = page.evaluate("window.sextantUiMarker")
        assert marker == "still the same page", "the page was reloaded"
        assert not page_errors, f"the page logged errors: {page_errors}"
        step("no reload and no errors in the page")
        browser.close()
    print("ALL PASS", flush=True)


if __name__ == "__main__":
    main()
