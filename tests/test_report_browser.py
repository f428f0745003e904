"""The report in a real browser: headless Chromium, driven over the DevTools protocol.

A report that Python builds without error can still show nothing (a script that throws, a
resource fetched from a CDN that is not there offline), so these tests look at what the
browser did: every chart's canvas painted in the data's colour, no request other than the
file itself, no console error, and a screenshot with a picture in it. The protocol client is
a few lines over aiohttp's websocket (already a dependency): no browser download.

Under CI=true a missing Chromium fails these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import pytest
from bokeh.palettes import Category10_10
from PIL import Image

from crawler.api.capabilities import Capabilities
from crawler.cli import report as report_cli
from crawler.cli.crawl import run_crawl
from crawler.core.config import ApiMode, Config, load_config
from crawler.report import ReportData, read_dataset, read_timeline, sections
from crawler.report.render import build_report
from crawler.report.synthetic import synthetic_crawl, synthetic_dataset
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import write_config

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    # Belt and braces: were the report to ask for anything, it would go nowhere. The
    # Network listener below is what the tests assert on; these only keep it offline.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
)
WIDTH, HEIGHT = 1366, 768  # a laptop screen
HANG_GUARD_S = 120  # only against a browser that never answers; not a speed bound
FIRST_COLOUR = Category10_10[0]  # the colour of every chart's first series

# Waits for Bokeh's own "document idle" (every view rendered; at once on a page without
# Bokeh), then measures each chart: distinct colours, and pixels near the colour of its first
# series, read from the canvases Bokeh drew into (in shadow roots: --dump-dom would miss them).
MEASURE_JS = """
(async () => {
  const want = [%d, %d, %d];
  const idle = () => !window.Bokeh
    || (Bokeh.documents.length > 0 && Bokeh.documents.every((d) => d.is_idle));
  while (!idle()) await new Promise((r) => setTimeout(r, 20));
  const canvases = (root) => {
    const out = [];
    const walk = (node) => {
      if (node.tagName === 'CANVAS') out.push(node);
      if (node.shadowRoot) walk(node.shadowRoot);
      for (const child of node.children || []) walk(child);
    };
    walk(root);
    return out;
  };
  const measure = (el) => {
    const colours = new Set();
    let near = 0;
    for (const c of canvases(el)) {
      if (!c.width || !c.height) continue;
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] === 0) continue;
        colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
        const d = Math.abs(px[i] - want[0]) + Math.abs(px[i + 1] - want[1])
                + Math.abs(px[i + 2] - want[2]);
        if (d < 40) near++;
      }
    }
    return {key: el.dataset.chart, colours: colours.size, near: near};
  };
  return [...document.querySelectorAll('[data-chart]')].map(measure);
})()
"""
# The runs as the rendered document marks them: labels and the shaded boxes' colours.
MARKS_JS = """
(() => {
  if (!window.Bokeh) return {labels: [], boxes: []};
  const models = [...Bokeh.documents[0].all_models];
  return {
    labels: models.filter((m) => m.type === 'Label').map((m) => m.text),
    boxes: models.filter((m) => m.type === 'BoxAnnotation' && m.level === 'underlay')
      .map((m) => m.fill_color),
  };
})()
"""

# Resolves with the text of every tooltip Bokeh shows, once there is one.
TOOLTIPS_JS = """
(async () => {
  const texts = () => {
    const out = [];
    const walk = (node) => {
      if (node.classList && node.classList.contains('bk-tooltip-content')) {
        out.push(node.textContent.replace(/\\s+/g, ' ').trim());
      }
      if (node.shadowRoot) walk(node.shadowRoot);
      for (const child of node.children || []) walk(child);
    };
    walk(document.body);
    return out.filter((t) => t);
  };
  while (!texts().length) await new Promise((r) => setTimeout(r, 20));
  return texts();
})()
"""


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        message = "Chromium is needed for the report's browser test (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; under CI=true it must run, not skip")
        pytest.skip(message)
    return found


@dataclass
class PageLog:
    """What the page did while it loaded and ran: every request and every error."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)


class DevTools:
    """One page target over a flat DevTools session: commands by id, events into PageLog."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.log = PageLog()
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._session: str | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = message.json()
            if "id" in data:
                future = self._waiting.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            else:
                self._event(data["method"], data.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.log.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.log.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.log.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.log.errors.append(f"log: {entry['text']} {entry.get('url', '')}".strip())
        elif method == "Page.loadEventFired":
            self.log.loaded.set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        await self.ws.send_json(message)
        return await future

    async def open_page(self) -> None:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        self._session = attached["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            await self.send(f"{domain}.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


@dataclass
class Visit:
    log: PageLog
    charts: list[dict[str, Any]]
    notes: int
    marks: dict[str, list[str]]
    screenshot: bytes
    tooltips: list[str]


async def _devtools_url(stderr: asyncio.StreamReader) -> str:
    while line := await stderr.readline():
        found = re.search(rb"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1).decode()
    raise RuntimeError("Chromium exited before it opened the DevTools port")


async def _drain(stderr: asyncio.StreamReader) -> None:
    """Chromium writes to stderr for its whole life: a full pipe would stall it."""
    while await stderr.read(65536):
        pass


@pytest.fixture
async def browser() -> AsyncIterator[str]:
    """A headless Chromium with a new profile; yields its DevTools websocket URL."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        drain: asyncio.Task[None] | None = None
        try:
            url = await asyncio.wait_for(_devtools_url(proc.stderr), HANG_GUARD_S)
            drain = asyncio.create_task(_drain(proc.stderr))
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()
            if drain is not None:
                await drain


async def visit(
    browser_url: str, path: Path, full_page: bool = True, hover: str | None = None
) -> Visit:
    """Opens ``path`` in a new tab, waits for every chart to paint, screenshots the page;
    then moves the mouse over the chart ``hover`` and reads the tooltips it brings up."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(browser_url, max_msg_size=0) as ws,
    ):
        tools = DevTools(ws)
        try:
            await tools.open_page()
            await tools.send("Page.navigate", url=path.resolve().as_uri())
            await asyncio.wait_for(tools.log.loaded.wait(), HANG_GUARD_S)
            rgb = tuple(int(FIRST_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
            try:
                charts = await asyncio.wait_for(tools.evaluate(MEASURE_JS % rgb), HANG_GUARD_S)
            except TimeoutError:
                pytest.fail(f"Bokeh never went idle; page errors: {tools.log.errors}")
            notes = await tools.evaluate("document.querySelectorAll('[data-note]').length")
            marks = await tools.evaluate(MARKS_JS)
            height = await tools.evaluate("document.documentElement.scrollHeight")
            clip = {"x": 0, "y": 0, "width": WIDTH, "height": height if full_page else HEIGHT}
            shot = await tools.send(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=full_page,
                clip={**clip, "scale": 1},
            )
            png = base64.b64decode(shot["data"])
            tooltips = [] if hover is None else await _hover(tools, hover)
            return Visit(tools.log, charts, notes, marks, png, tooltips)
        finally:
            await tools.close()


async def _hover(tools: DevTools, key: str) -> list[str]:
    box = await tools.evaluate(
        f"""(() => {{
            const el = document.querySelector("[data-chart='{key}']");
            el.scrollIntoView();
            const b = el.getBoundingClientRect();
            return [b.x + b.width * 0.4, b.y + b.height * 0.5];
        }})()"""
    )
    for step in range(3):  # a move within the plot, as a hand would make
        x, y = box[0] + 4 * step, box[1]
        await tools.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    try:
        return await asyncio.wait_for(tools.evaluate(TOOLTIPS_JS), HANG_GUARD_S)
    except TimeoutError:
        pytest.fail(f"no tooltip appeared over {key!r}")


def offsite(log: PageLog, path: Path) -> list[str]:
    """Every request that was not for the report file itself or inline data."""
    own = path.resolve().as_uri()
    return [u for u in log.requests if u != own and not u.startswith(("data:", "blob:"))]


def colour_stats(png: bytes) -> tuple[int, float]:
    """Distinct colours in a screenshot, and the share of its pixels that are not white."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    white = sum(n for n, c in colours if min(c) >= 250)
    return len(colours), 1 - white / (image.width * image.height)


def build(tmp_path: Path, mode: ApiMode, tracks: int = 20_000) -> tuple[Path, ReportData]:
    con = duckdb.connect()
    synthetic_dataset(con, tracks, mode)
    samples, runs = synthetic_crawl(days=0.1, mode=mode)
    data = ReportData(
        title=f"spotify-crawler report ({mode})",
        generated_at=1_772_400_000.0,
        api_mode=mode,
        capabilities=Capabilities.for_mode(mode).to_dict(),
        dataset=read_dataset(con),
        timeline=read_timeline(samples, runs),
    )
    path = tmp_path / f"report-{mode}.html"
    build_report(data, path)
    return path, data


@pytest.mark.parametrize("mode", ["extended", "development"])
async def test_every_chart_renders_offline_without_errors(
    browser: str, tmp_path: Path, mode: ApiMode
) -> None:
    path, data = build(tmp_path, mode)
    specs = [chart for section in sections(data) for chart in section.charts]
    drawn = sorted(chart.key for chart in specs if chart.note is None)
    noted = [chart.key for chart in specs if chart.note is not None]

    seen = await visit(browser, path, hover="requests")

    assert sorted(m["key"] for m in seen.charts) == drawn
    unpainted = [m for m in seen.charts if m["near"] == 0 or m["colours"] < 8]
    assert unpainted == []
    assert seen.notes == len(noted)
    assert offsite(seen.log, path) == []
    assert seen.log.requests[0] == path.resolve().as_uri()
    assert seen.log.errors == []
    colours, ink = colour_stats(seen.screenshot)
    assert colours >= 200 and ink >= 0.05, (colours, ink)
    (tmp_path / f"report-{mode}.png").write_bytes(seen.screenshot)
    # The four runs: the first paused by a ban (red), one killed, one failed, one finished.
    assert seen.marks["labels"] == [
        "run 1 · exit 3 · paused",
        "run 2 · running or killed",
        "run 3 · exit 1",
        "run 4 · exit 0",
    ]
    time_charts = sum(1 for chart in specs if chart.runs and chart.note is None)
    assert len(seen.marks["boxes"]) == 4 * time_charts == 32
    # Hovering reads the values: one tooltip per series under the cursor, named and dated.
    series_under_cursor = ("a sent", "b sent", "a believed", "b believed")
    for tip, series in zip(seen.tooltips, series_under_cursor, strict=True):
        assert re.fullmatch(rf"account-{series} at: 2026-03-01 \d\d:\d\d value: [\d.]+", tip)
    boxes = Counter(seen.marks["boxes"])
    assert boxes == {"#d62728": time_charts, "#7f7f7f": 2 * time_charts, "#2ca02c": time_charts}
    if mode == "extended":
        assert len(drawn) == 26 and noted == []
    else:  # the edges a development-mode app is refused are named, not drawn empty
        assert sorted(noted) == ["features", "related-degree"]
        assert len(drawn) == 13


async def test_the_checks_catch_a_broken_page(browser: str, tmp_path: Path) -> None:
    """The same checks on a page that fetches from the network and throws must fail."""
    path = tmp_path / "bad.html"
    path.write_text(
        "<!DOCTYPE html><html><body><div data-chart='x'><canvas width=10 height=10>"
        "</canvas></div><img src='https://cdn.example.com/plot.png'>"
        "<script>fetch('http://example.org/data.json').catch(() => {});"
        "console.error('boom'); null.x;</script></body></html>",
        encoding="utf-8",
    )
    seen = await visit(browser, path, full_page=False)

    assert set(offsite(seen.log, path)) == {
        "https://cdn.example.com/plot.png",
        "http://example.org/data.json",
    }
    assert any("boom" in e for e in seen.log.errors)
    assert any(e.startswith("exception:") for e in seen.log.errors)
    assert [m["near"] for m in seen.charts] == [0]  # a blank canvas is not a chart
    colours, ink = colour_stats(seen.screenshot)
    assert colours < 200 or ink < 0.05


# -- reports of real crawls of the simulator ----------------------------------------------

CATALOG = Catalog(30, seed=7, playlists=10)


async def crawled(tmp_path: Path, mode: str, *, paused_first: bool = False) -> Config:
    """A crawl of the simulator (artists, a playlist); with ``paused_first``, its first run
    is paused by a long ban on every account (exit 3) and a second run finishes it."""
    seeds = {"artists": CATALOG.first_artist_ids(), "playlists": [CATALOG.playlist_id(0)]}
    if paused_first:
        limited = SimConfig(mode=mode, rate=5, window_s=600)
        async with await start_sim(limited, CATALOG) as sim:
            path = write_config(
                tmp_path,
                sim.url,
                seeds=seeds,
                api={"max_retry_after_s": 60},
                credentials=[{"client_id": "sim-client", "client_secret": "sim-secret", "rate": 0}],
            )
            assert (await run_crawl(load_config(path, environ={}))).exit_code == 3
    async with await start_sim(SimConfig(mode=mode), CATALOG) as sim:
        # Resuming against another simulator: the API's address is not part of the crawl.
        path = write_config(tmp_path, sim.url, seeds=seeds)
        config = load_config(path, environ={})
        assert (await run_crawl(config)).exit_code == 0
    return config


@pytest.mark.parametrize(
    ("mode", "paused"), [("extended", False), ("development", False), ("extended", True)]
)
async def test_the_report_of_a_real_crawl_renders_every_chart(
    browser: str, tmp_path: Path, mode: str, paused: bool
) -> None:
    config = await crawled(tmp_path, mode, paused_first=paused)
    path = tmp_path / "report.html"
    await asyncio.to_thread(report_cli.build, config, path)

    seen = await visit(browser, path)

    assert seen.charts and [m for m in seen.charts if m["near"] == 0] == []
    assert offsite(seen.log, path) == [] and seen.log.errors == []
    colours, ink = colour_stats(seen.screenshot)
    assert colours >= 200 and ink >= 0.05, (colours, ink)
    (tmp_path / "report.png").write_bytes(seen.screenshot)
    expected_runs = ["run 1 · exit 3 · paused", "run 2 · exit 0"] if paused else ["run 1 · exit 0"]
    assert seen.marks["labels"] == expected_runs
