import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getAppUrl, runKiln, type KilnEnv } from '../helpers/kiln-cli.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against a real server with
 * node-hello pushed by the `kiln` CLI: log in, find the app RUNNING, scale it to two instances, watch a log line
 * arrive, stop it. The tests run in order on one page, each from where the previous one left it.
 *
 * `KILN_CONSOLE_SCREENSHOTS=1` writes the screenshots of the main pages into docs/ (for README); otherwise they
 * go to a temporary folder.
 */

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const repo = path.resolve(import.meta.dirname, '../..');
const shots = process.env.KILN_CONSOLE_SCREENSHOTS === '1' ? path.join(repo, 'docs') : fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-console-shots-'));
const WAIT = 45_000;
const SESSION_KEY = 'kiln.console.session';
const STEP = 60_000;

let server: ServerProcess;
let home: string;
let browser: Browser;
let page: Page;
const problems: string[] = [];
/** Set while a test makes the API refuse the saved access token on purpose. */
let expired = false;

async function screenshot(name: string) {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

describe.skipIf(!fs.existsSync(CHROMIUM))('the web console in a browser', () => {
  beforeAll(async () => {
    server = await startServerProcess();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-console-home-'));
    const opts: KilnEnv = { home, cwd: repo };
    const login = await runKiln(['login', '-a', server.url, '-u', 'admin', '-p', server.adminPassword], opts);
    expect(login.code, login.stderr).toBe(0);
    // 256M rather than the example's 128M: `npm start` keeps npm's own process beside node, and the two can pass
    // 128M together, which would crash-loop instances in the middle of the test.
    const push = await runKiln(['push', 'examples/node-hello', '-m', '256M'], opts, 180_000);
    expect(push.code, `${push.stdout}\n${push.stderr}`).toBe(0);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      // Failed requests are judged below by their URL (the wrong-password login's 401 is expected).
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console error: ${msg.text()}`);
    });
    page.on('response', (res) => {
      const expected = res.status() === 401 && (new URL(res.url()).pathname === '/oauth/token' || expired);
      if (res.status() >= 400 && !expected) problems.push(`${res.status()} ${res.request().method()} ${res.url()}`);
    });
    page.on('requestfailed', (req) => problems.push(`failed ${req.method()} ${req.url()}: ${req.failure()?.errorText}`));
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('refuses a wrong password with a message and stays on the login form', async () => {
    await page.goto(`${server.url}/console`);
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'credentials were rejected' }).waitFor({ timeout: WAIT });
  }, STEP);

  it('logs in through the token endpoint and lists the default org with its space', async () => {
    await page.getByLabel('Password').fill(server.adminPassword);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Organizations' }).waitFor({ timeout: WAIT });
    await page.locator('section.org', { hasText: 'default' }).getByRole('link', { name: 'dev' }).waitFor({ timeout: WAIT });
    await page.locator('section.org li', { hasText: 'dev' }).getByText('1 app, 1 started').waitFor({ timeout: WAIT });
    await screenshot('console-orgs');
  }, STEP);

  it('shows the pushed app in its space as started with its instance running and its route as a link', async () => {
    await page.getByRole('link', { name: 'dev' }).click();
    const row = page.locator('tr[data-app="node-hello"]');
    await row.getByText('STARTED').waitFor({ timeout: WAIT });
    await row.getByText('1/1').waitFor({ timeout: WAIT });
    const port = new URL(server.url).port;
    expect(await row.getByRole('link', { name: 'node-hello.apps.localhost' }).getAttribute('href')).toBe(`http://node-hello.apps.localhost:${port}/`);
    await screenshot('console-space');
  }, STEP);

  it('opens the app page with the instance RUNNING, its CPU, memory and uptime', async () => {
    await page.getByRole('link', { name: 'node-hello', exact: true }).click();
    await page.getByRole('heading', { name: 'node-hello' }).waitFor({ timeout: WAIT });
    const first = page.locator('[data-process="web"] tr[data-instance="0"]');
    await first.getByText('RUNNING').waitFor({ timeout: WAIT });
    await expect.poll(async () => (await first.locator('td').nth(3).textContent()) ?? '', { timeout: WAIT }).toMatch(/ of \d+M$/);
    await expect.poll(async () => (await first.locator('td').nth(5).textContent()) ?? '', { timeout: WAIT }).toMatch(/^\d+[smhd]/);
  }, STEP);

  it('scales the app to two instances and shows both running', async () => {
    await page.getByLabel('web instances').fill('2');
    await page.locator('[data-process="web"]').getByRole('button', { name: 'Scale' }).click();
    const rows = page.locator('[data-process="web"] tr[data-instance]');
    await expect.poll(() => rows.count(), { timeout: WAIT }).toBe(2);
    await page.locator('[data-process="web"] tr[data-instance="1"]').getByText('RUNNING').waitFor({ timeout: WAIT });
    await page.locator('.title-row').getByText('2/2').waitFor({ timeout: WAIT });
  }, STEP);

  it('shows a new log line as it arrives', async () => {
    const marker = `/console-e2e-${randomBytes(4).toString('hex')}`;
    const port = new URL(server.url).port;
    const res = await getAppUrl(`http://node-hello.apps.localhost:${port}${marker}`);
    expect(res.status).toBe(200);
    // The router's access log line for that request, read from log-cache by the page's follower.
    await page.locator('.log-box .line', { hasText: marker }).waitFor({ timeout: WAIT });
    await page.locator('.log-box .line', { hasText: 'node-hello instance 1 listening' }).first().waitFor({ timeout: WAIT });
    await screenshot('console-app');
  }, STEP);

  it('lists the scale among the recent audit events', async () => {
    await page.locator('table.events tr', { hasText: 'audit.app.process.scale' }).filter({ hasText: '→ 2 instances' }).waitFor({ timeout: WAIT });
  }, STEP);

  it('restarts the app with a rolling deployment and shows its progress until it is deployed', async () => {
    await page.locator('.title-row').getByRole('button', { name: 'Rolling restart' }).click();
    const card = page.getByRole('region', { name: 'Deployment' });
    await card.waitFor({ timeout: WAIT });
    await card.getByText(/\d of 2 new instances running/).waitFor({ timeout: WAIT });
    await screenshot('console-deployment');
    await page.getByText(/Last deployment: rolling, finalized \(deployed\)/).waitFor({ timeout: WAIT });
    await page.locator('.title-row').getByText('2/2').waitFor({ timeout: WAIT });
  }, STEP);

  it('stops the app: the state turns STOPPED and no instance is left', async () => {
    await page.locator('.title-row').getByRole('button', { name: 'Stop', exact: true }).click();
    await page.locator('.title-row').getByText('STOPPED').waitFor({ timeout: WAIT });
    await page.locator('[data-process="web"]').getByText('The app is stopped: no instance runs.').waitFor({ timeout: WAIT });
    await page.locator('.title-row').getByRole('button', { name: 'Start', exact: true }).waitFor({ timeout: WAIT });
    const token = (await cliLogin(server.url, 'admin', server.adminPassword)).access_token;
    const apps = (await cliCall('GET', `${server.url}/v3/apps?names=node-hello`, token)).body as { resources: Array<{ state: string }> };
    expect(apps.resources[0]!.state).toBe('STOPPED');
  }, STEP);

  it('trades the refresh token for a new access token when the API refuses the old one', async () => {
    expired = true;
    try {
      // Run in the page (this file is typed for Node, without the DOM's globals).
      await page.evaluate(`(() => {
        const key = ${JSON.stringify(SESSION_KEY)};
        const saved = JSON.parse(sessionStorage.getItem(key));
        sessionStorage.setItem(key, JSON.stringify({ ...saved, access_token: 'expired.token.value' }));
      })()`);
      await page.goto(`${server.url}/console#/`);
      await page.getByRole('heading', { name: 'Organizations' }).waitFor({ timeout: WAIT });
      await page.locator('section.org', { hasText: 'default' }).getByRole('link', { name: 'dev' }).waitFor({ timeout: WAIT });
      const token = await page.evaluate<string>(`JSON.parse(sessionStorage.getItem(${JSON.stringify(SESSION_KEY)})).access_token`);
      expect(token).not.toBe('expired.token.value');
    } finally {
      expired = false;
    }
  }, STEP);

  it('logs out: the tokens are forgotten and the login form is back', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Log in to Kiln' }).waitFor({ timeout: WAIT });
    expect(await page.evaluate(`sessionStorage.getItem(${JSON.stringify(SESSION_KEY)})`)).toBeNull();
  }, STEP);

  it('loaded without script errors or blocked resources', () => {
    expect(problems).toEqual([]);
  });
});
