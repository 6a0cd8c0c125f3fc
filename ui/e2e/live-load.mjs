// Benchmark (not a test): does the Overview page keep up with heavy live
// traffic without freezing? Starts `assisters serve` (release build by
// default), opens the Overview in Chromium, drives the built-in echo model
// with wrk as fast as one connection pool can for DURATION seconds, and
// measures in the page: the longest gap between animation frames, long tasks
// (> 50 ms), and the requests/s the page shows against what wrk sent.
//
//   node e2e/live-load.mjs            (from ui/, after npm run build)
//
// Environment: GATEWAY_BIN (default ../target/release/assisters), CHROMIUM,
// DURATION (default 20), CONNECTIONS (default 8).

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const BIN = process.env.GATEWAY_BIN ?? join(repo, 'target/release/assisters');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const DURATION = Number(process.env.DURATION ?? 20);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 8);
const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dir = await mkdtemp(join(tmpdir(), 'assisters-live-'));
const gw = spawn(BIN, ['--data-dir', dir, 'serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], {
  stdio: 'ignore',
});
let browser;
try {
  let rt;
  for (let i = 0; i < 300 && !rt; i++) {
    await sleep(100);
    rt = await readFile(join(dir, 'runtime.json'), 'utf8').then(JSON.parse, () => undefined);
  }
  // A tier far above what the machine serves: the page, not the limiter, is measured.
  await run(BIN, ['--data-dir', dir, 'tiers', 'create', 'load', '--rpm', '1000000000', '--tpm', '1000000000']);
  const created = JSON.parse(
    (await run(BIN, ['--data-dir', dir, 'keys', 'create', '--name', 'load', '--tier', 'load', '--json'])).stdout,
  );
  const link = /http:\/\/\S+\/login\?code=\S+/.exec((await run(BIN, ['--data-dir', dir, 'login'])).stdout)[0];

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(link);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await page.evaluate(() => {
    const w = window;
    w.__gaps = [];
    w.__long = [];
    let last = performance.now();
    const frame = (t) => {
      w.__gaps.push(t - last);
      last = t;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    new PerformanceObserver((l) => l.getEntries().forEach((e) => w.__long.push(e.duration))).observe({
      type: 'longtask',
      buffered: false,
    });
  });

  const lua = join(dir, 'chat.lua');
  await writeFile(
    lua,
    `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${created.key}"
wrk.body = '{"model":"assisters-echo","messages":[{"role":"user","content":"live load"}]}'
`,
  );
  const shown = [];
  const sampler = setInterval(async () => {
    const v = await page
      .locator('text=Requests/s')
      .first()
      .locator('xpath=following-sibling::*[1]')
      .textContent()
      .catch(() => null);
    // "2.9K" → 2900
    if (v) shown.push(Number(v.replace(/[^0-9.]/g, '')) * (/k/i.test(v) ? 1000 : 1));
  }, 1000);
  const { stdout } = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '-s', lua, `http://${rt.listen}/v1/chat/completions`]);
  clearInterval(sampler);
  const sent = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const total = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  await sleep(1500);
  const m = await page.evaluate(() => {
    const gaps = window.__gaps.slice(10).sort((a, b) => a - b);
    const p = (q) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] ?? 0;
    return { frames: gaps.length, p50: p(0.5), p99: p(0.99), max: gaps.at(-1) ?? 0, long: window.__long };
  });
  const totalShown = await page.getByText(/total$/).first().textContent();
  await page.screenshot({ path: join(repo, 'artifacts/live-load-overview.png') });
  const busy = shown.filter((x) => x > 0).sort((a, b) => a - b);
  console.log(
    JSON.stringify(
      {
        wrk_requests_per_s: Math.round(sent),
        wrk_requests: total,
        page_requests_per_s_median: busy[Math.floor(busy.length / 2)] ?? 0,
        page_total_line: totalShown,
        frames: m.frames,
        frame_gap_ms: { p50: +m.p50.toFixed(1), p99: +m.p99.toFixed(1), max: +m.max.toFixed(1) },
        long_tasks: m.long.length,
        longest_task_ms: Math.round(Math.max(0, ...m.long)),
      },
      null,
      1,
    ),
  );
} finally {
  await browser?.close();
  gw.kill('SIGTERM');
  await sleep(500);
  await rm(dir, { recursive: true, force: true });
}
