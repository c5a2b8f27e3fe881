// aecd's dashboard (GET /, docs/dashboard.md) in a real browser: Debian's Chromium driven by
// playwright-core, against the real `aec serve` on a real sqlite file, with a real `aec run`.
//
//   node tests/dashboard/dashboard_test.mjs /path/to/aec      (or AEC_BINARY=/path/to/aec)
//
// The server runs with a tokens file, so the page first meets a 401 and asks for a token; the
// test pastes a reader token, then watches team/job go from running to succeeded. Every wait is
// for a condition (the server answering, a DOM state), never a fixed sleep.
//
// Exit codes: 0 passed, 1 failed, 77 skipped (Chromium or playwright-core missing: run
// scripts/install-test-deps.sh). AEC_DASHBOARD_KEEP=1 keeps the temp dir (with the screenshot)
// after a pass; after a failure it is always kept.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, openSync, closeSync, readFileSync }
  from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SKIP = 77;
const CHROMIUM = process.env.AEC_CHROMIUM || "/usr/bin/chromium";
const TIMEOUT_MS = 20_000;  // for each awaited condition
const READER_TOKEN = "reader-token-0123456789abcdef";
const WRITER_TOKEN = "writer-token-0123456789abcdef";

function skip(why) {
  console.log(`SKIPPED: ${why}`);
  console.log("Install the browser test's dependencies with scripts/install-test-deps.sh.");
  process.exit(SKIP);
}

const aec = process.argv[2] || process.env.AEC_BINARY;
if (!aec || !existsSync(aec)) {
  console.error(`usage: node dashboard_test.mjs /path/to/aec (or AEC_BINARY); got '${aec ?? ""}'`);
  process.exit(1);
}
if (!existsSync(CHROMIUM)) {
  skip(`${CHROMIUM} is missing (Debian package chromium)`);
}
let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (err) {
  skip(`playwright-core is not installed in tests/dashboard/node_modules (${err.code ?? err})`);
}

const dir = mkdtempSync(join(tmpdir(), "aec-dashboard-"));
const children = [];  // pids to kill at the end
let browser = null;  // the persistent BrowserContext (closing it ends Chromium)
let passed = false;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Starts `aec ARGS...` with its output in dir/NAME.log; returns the child process.
function startAec(name, args, env = {}) {
  const log = openSync(join(dir, `${name}.log`), "a");
  const child = spawn(aec, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  children.push(child);
  return child;
}

// Polls `check` (a condition, not a delay) until it returns true or the time is up.
async function until(what, check, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) {
        return;
      }
    } catch {
      // not yet: the server may not be listening
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

async function main() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, "tokens"),
                `${READER_TOKEN} dashboard reader *\n${WRITER_TOKEN} runner writer team/\n`);
  const server = startAec("aecd", ["serve", "--listen", `127.0.0.1:${port}`,
                                   "--store", `sqlite://${join(dir, "aec.db")}`,
                                   "--tokens", join(dir, "tokens"), "--quiet"]);
  await until("aec serve to answer /healthz", async () => {
    check(!exited(server), "aec serve exited");
    return (await fetch(`${base}/healthz`)).ok;
  });

  const page0 = await fetch(`${base}/`);
  check(page0.status === 200, `GET / answered ${page0.status}`);
  check(page0.headers.get("content-type").startsWith("text/html"),
        `GET / has Content-Type ${page0.headers.get("content-type")}`);

  // A fresh profile (--user-data-dir) in the temp dir; the flags keep Chromium off the network.
  browser = await chromium.launchPersistentContext(join(dir, "chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1400, height: 700 },
  });
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    // A blocking query aborted on purpose may log a failed request; anything else is a bug.
    if (msg.type() === "error" && !/Failed to load resource|net::ERR_ABORTED/.test(msg.text())) {
      pageErrors.push(msg.text());
    }
  });

  // 1. No token yet: the page asks for one.
  await page.goto(`${base}/?prefix=team/`);
  await page.locator("#auth").waitFor({ state: "visible", timeout: TIMEOUT_MS });
  check(await page.inputValue("#prefix") === "team/", "?prefix= did not fill the prefix box");
  await page.getByLabel("Bearer token").fill(READER_TOKEN);
  await page.getByRole("button", { name: "Use token" }).click();
  await page.locator("#auth").waitFor({ state: "hidden", timeout: TIMEOUT_MS });
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: TIMEOUT_MS });

  // 2. A job starts: its key appears as running, with its holder.
  const go = join(dir, "go");
  const job = startAec("job", ["run", "--store", base, "--key", "team/job", "--",
                               "sh", "-c", `while [ ! -e '${go}' ]; do sleep 0.05; done`],
                       { AEC_TOKEN: WRITER_TOKEN });
  const running = page.locator('#keys tbody tr[data-key="team/job"][data-state="running"]');
  await running.waitFor({ timeout: TIMEOUT_MS });
  const holderText = await running.innerText();
  check(holderText.includes(String(job.pid)), `the holder row does not show pid ${job.pid}: ` +
        holderText);
  await page.locator('#executions tbody tr[data-key="team/job"][data-status="running"]')
      .waitFor({ timeout: TIMEOUT_MS });
  await page.screenshot({ path: join(dir, "dashboard-running.png"), fullPage: true });

  // Another prefix hides it; clearing the box shows it again (and the URL follows).
  await page.fill("#prefix", "other/");
  await page.press("#prefix", "Enter");
  await page.locator('#keys tbody tr[data-key="team/job"]').waitFor({ state: "detached" });
  check(new URL(page.url()).searchParams.get("prefix") === "other/", "URL did not follow");
  await page.fill("#prefix", "team/");
  await page.press("#prefix", "Enter");
  await running.waitFor({ timeout: TIMEOUT_MS });

  // 3. The job finishes: the key goes idle and the execution succeeded.
  writeFileSync(go, "");
  await page.locator('#keys tbody tr[data-key="team/job"][data-state="idle"]')
      .waitFor({ timeout: TIMEOUT_MS });
  const done = page.locator('#executions tbody tr[data-key="team/job"][data-status="succeeded"]');
  await done.waitFor({ timeout: TIMEOUT_MS });
  await until("the job to exit", () => exited(job));
  check(job.exitCode === 0, `aec run exited ${job.exitCode}`);

  // Data is text: a key with markup in it is shown, not parsed.
  const html = startAec("html", ["run", "--store", base, "--key", "team/<b id=x>bold</b>", "--",
                                 "true"], { AEC_TOKEN: WRITER_TOKEN });
  await until("the markup job to exit", () => exited(html));
  await page.locator("#keys tbody tr[data-key=\"team/<b id=x>bold</b>\"]")
      .waitFor({ timeout: TIMEOUT_MS });
  check(await page.locator("#x").count() === 0, "a key's markup became an element");

  const screenshot = join(dir, "dashboard.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshots: ${join(dir, "dashboard-running.png")} ${screenshot}`);
  check(pageErrors.length === 0, `errors in the page: ${pageErrors.join(" | ")}`);
  passed = true;
}

function cleanup() {
  for (const child of children) {
    if (!exited(child)) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

// Killed by CTest's timeout or by hand: the servers and jobs must not outlive the test.
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    cleanup();
    console.error(`FAILED: stopped by ${signal}; kept ${dir}`);
    process.exit(1);
  });
}

let code = 1;
try {
  await main();
  code = 0;
  console.log("PASSED: the dashboard showed team/job running, then succeeded");
} catch (err) {
  console.error(`FAILED: ${err.stack ?? err}`);
  for (const name of ["aecd", "job"]) {
    const log = join(dir, `${name}.log`);
    if (existsSync(log)) {
      console.error(`--- ${name}.log\n${readFileSync(log, "utf8")}`);
    }
  }
} finally {
  if (browser) {
    await browser.close().catch(() => {});
  }
  cleanup();
}
if (passed && process.env.AEC_DASHBOARD_KEEP !== "1") {
  rmSync(dir, { recursive: true, force: true });
} else {
  console.log(`kept: ${dir}`);
}
process.exit(code);
