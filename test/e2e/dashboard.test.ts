/**
 * The dashboard end to end: a real `baton serve` (offline agent, temp data
 * dir) and the system Chromium driven by playwright-core. The page is used as
 * a person would (labels, roles, test ids); the API is read directly only to
 * compare what the page shows with what is stored.
 */

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startBaton } from './baton-process.js';
import type { BatonProcess } from './baton-process.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = join(REPO_ROOT, 'test-artifacts', 'dashboard.png');
const LIFECYCLE = ['running', 'completed', 'awaitingIdleSession', 'continuing', 'followedUp'];

interface ApiMessage {
  id: string;
  role: string;
  content: string;
  metadata: Record<string, unknown>;
}
interface ApiJob {
  id: string;
  state: string;
  outcome: string | null;
  exitCode: number | null;
}
interface ApiSession {
  id: string;
  title: string;
}

/**
 * Injected before the page's own scripts: records every WebSocket the page
 * opens (and the address it asked for), and can hold new connections back
 * (they go to a closed port and fail, as during an outage).
 */
const SOCKET_PROBE = `
  (() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.__wsUrls = [];
    window.__holdWs = false;
    class ProbedSocket extends Native {
      constructor(url, protocols) {
        const asked = String(url);
        window.__wsUrls.push(asked);
        super(window.__holdWs ? 'ws://127.0.0.1:9/held-by-test' : asked, protocols);
        window.__sockets.push(this);
      }
    }
    window.WebSocket = ProbedSocket;
  })();
`;

/**
 * Installed on the loaded page: logs every value each job card's `data-state`
 * takes (from the mutation records, so that quick successive changes are all
 * kept), and every live-turn bubble with the text it had when it went away.
 */
const DOM_PROBE = `
  (() => {
    window.__stateLog = [];
    window.__liveTurns = [];
    new MutationObserver((records) => {
      const touched = new Map();
      for (const r of records) {
        if (r.type === 'attributes' && r.attributeName === 'data-state' && r.target.matches('[data-testid=job-card]')) {
          const id = r.target.getAttribute('data-job-id');
          if (r.oldValue !== null) window.__stateLog.push({ id, state: r.oldValue });
          touched.set(r.target, id);
        }
        if (r.type === 'childList') {
          for (const node of r.removedNodes) {
            if (node.nodeType === 1 && node.matches('[data-testid=live-turn]')) {
              window.__liveTurns.push({
                turnId: node.getAttribute('data-turn-id'),
                jobId: node.getAttribute('data-job-id'),
                text: node.querySelector('.content')?.textContent ?? '',
              });
            }
          }
        }
      }
      for (const [el, id] of touched) window.__stateLog.push({ id, state: el.getAttribute('data-state') });
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'], attributeOldValue: true });
  })();
`;

let dataDir = '';
let server: BatonProcess | null = null;
let browser: Browser | null = null;
let context: BrowserContext | null = null;
let page: Page;
/** Addresses of the real WebSocket connections the page made. */
const socketUrls: string[] = [];

function live(): BatonProcess {
  if (!server) throw new Error('the server is not running');
  return server;
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${live().url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${live().token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

async function waitUntil<T>(what: string, probe: () => Promise<T | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== null && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function feedState(): Promise<string | null> {
  return page.getByTestId('feed-status').getAttribute('data-state');
}

async function waitForFeed(state: string, timeoutMs = 30_000): Promise<void> {
  await page.waitForSelector(`[data-testid=feed-status][data-state=${state}]`, { timeout: timeoutMs });
}

function currentSessionId(): Promise<string | null> {
  return page.locator('[data-testid=session-item].current').getAttribute('data-session-id');
}

function shownMessageIds(): Promise<string[]> {
  return page
    .getByTestId('message')
    .evaluateAll((els) => els.map((el) => el.getAttribute('data-message-id') ?? ''));
}

/** Waits until the page shows exactly the stored messages, each once, in order. */
async function expectShownExactlyAsStored(sessionId: string): Promise<string[]> {
  let stored: string[] = [];
  let shown: string[] = [];
  await waitUntil(
    'the page to show every stored message exactly once',
    async () => {
      stored = (await api<{ messages: ApiMessage[] }>('GET', `/v1/sessions/${sessionId}/messages`)).messages.map(
        (m) => m.id,
      );
      shown = await shownMessageIds();
      return JSON.stringify(stored) === JSON.stringify(shown);
    },
    20_000,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\nstored: ${stored.join(', ')}\nshown:  ${shown.join(', ')}`);
  });
  expect(shown).toEqual(stored);
  expect(new Set(shown).size).toBe(shown.length);
  return shown;
}

async function pageValue<T>(expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the dashboard e2e test drives the system Chromium (install it with \`apt-get install -y chromium\`); it never downloads a browser`,
    );
  }
  dataDir = mkdtempSync(join(tmpdir(), 'baton-e2e-'));
  server = await startBaton({ dataDir, port: 0 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await context.addInitScript({ content: SOCKET_PROBE });
  page = await context.newPage();
  page.on('websocket', (ws) => socketUrls.push(ws.url()));
  page.on('pageerror', (error) => console.error('page error:', error));
});

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('dashboard', () => {
  it('takes the token from the printed address, keeps it and hides it from the address bar', async () => {
    expect(live().dashboard).toContain('?token=');
    await page.goto(live().dashboard);
    await waitForFeed('live');
    expect(page.url()).not.toContain('token=');
    expect(await pageValue<string>(`localStorage.getItem('baton.token')`)).toBe(live().token);
    await page.getByText(/owner \S+ · offline agent/).waitFor();
  });

  it('asks for a token when the kept one is refused, and takes a new one', async () => {
    await page.evaluate(`localStorage.setItem('baton.token', 'not-a-token')`);
    await page.goto(`${live().url}/`);
    const dialog = page.getByRole('dialog', { name: 'Access token' });
    await dialog.waitFor();
    expect(await dialog.getByRole('alert').textContent()).toContain('401');
    await dialog.getByLabel('Token').fill(live().token);
    await dialog.getByRole('button', { name: 'Save' }).click();
    await waitForFeed('live');
    expect(await dialog.isVisible()).toBe(false);
    expect(await pageValue<string>(`localStorage.getItem('baton.token')`)).toBe(live().token);
  });

  it('creates a session, shows its lock as idle, and deletes it', async () => {
    await page.getByLabel('New session title').fill('scratch');
    await page.getByRole('button', { name: 'Create' }).click();
    const item = page.locator('[data-testid=session-item].current');
    await item.getByText('scratch').waitFor();
    const id = await item.getAttribute('data-session-id');
    expect(id).toBeTruthy();
    await page.waitForSelector(`[data-testid=session-item][data-session-id="${id}"][data-lock=idle]`);
    expect(await page.getByTestId('session-lock').textContent()).toBe('Lock: idle');

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete session scratch' }).click();
    await page.locator(`[data-testid=session-item][data-session-id="${id}"]`).waitFor({ state: 'detached' });
    const { sessions } = await api<{ sessions: ApiSession[] }>('GET', '/v1/sessions');
    expect(sessions.map((s) => s.id)).not.toContain(id);
  });

  it('follows a background job from running to followedUp across a server restart and shows its continuation', async () => {
    await page.getByLabel('New session title').fill('e2e job');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('[data-testid=session-item].current').getByText('e2e job').waitFor();
    const sessionId = (await currentSessionId()) ?? '';
    await page.evaluate(DOM_PROBE);

    await page.getByLabel('Message', { exact: true }).fill('bg sleep 1; echo hi');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('[data-testid=message][data-role=user]').getByText('bg sleep 1; echo hi').waitFor();
    // The live turn streams in, then becomes the stored reply with its tool card.
    const reply = page.locator('[data-testid=message][data-role=assistant]').first();
    await reply.getByTestId('tool-card').getByText('start_background_job').waitFor();
    const card = page.getByTestId('job-card').first();
    await card.waitFor();
    const jobId = (await card.getAttribute('data-job-id')) ?? '';
    expect(jobId).toMatch(/\S/);
    expect(await card.getByTestId('job-lifecycle').getAttribute('aria-label')).toContain('now running');

    const [stored] = (await api<{ messages: ApiMessage[] }>('GET', `/v1/sessions/${sessionId}/messages`)).messages.filter(
      (m) => m.role === 'assistant',
    );
    const streamed = await pageValue<{ turnId: string | null; text: string }[]>('window.__liveTurns');
    expect(streamed).toContainEqual({ turnId: stored?.metadata['turnId'], jobId: null, text: stored?.content });

    // Drop the feed for real while the job runs: stop the service and start it again on the same port.
    const seqBefore = Number(await page.getByTestId('feed-status').getAttribute('data-seq'));
    expect(seqBefore).toBeGreaterThan(0);
    const port = live().port;
    await live().stop();
    server = null;
    await waitForFeed('reconnecting', 10_000);
    server = await startBaton({ dataDir, port });

    await page.waitForSelector(`[data-testid=job-card][data-job-id="${jobId}"][data-state=followedUp]`, {
      timeout: 60_000,
    });
    await waitForFeed('live');
    expect(socketUrls.slice(1).some((url) => /[?&]since=\d+/.test(url))).toBe(true);

    // Every state on the way was shown, in lifecycle order.
    const log = await pageValue<{ id: string; state: string }[]>('window.__stateLog');
    const seen = log.filter((e) => e.id === jobId).map((e) => e.state).filter((s, i, a) => s !== a[i - 1]);
    expect(seen[0]).toBe('running');
    expect(seen.at(-1)).toBe('followedUp');
    expect(seen).toEqual([...seen].sort((a, b) => LIFECYCLE.indexOf(a) - LIFECYCLE.indexOf(b)));
    expect(seen.length).toBeGreaterThanOrEqual(3);
    for (const state of LIFECYCLE) {
      expect(await card.locator(`[data-node=${state}]`).getAttribute('data-visited')).toBe('true');
    }
    expect(await card.locator('[data-node=followedUp]').getAttribute('data-current')).toBe('true');
    // `job.state` frames carry no exit code or output: the page reads the job again right after.
    await card.getByTestId('job-exit-code').getByText('0', { exact: true }).waitFor({ timeout: 5_000 });
    expect(await card.getByTestId('job-outcome').textContent()).toBe('succeeded');
    expect(await card.getByTestId('job-attempts').textContent()).toBe('1');
    expect(await card.getByTestId('job-output').textContent()).toContain('hi');
    expect(await card.getByTestId('job-why').textContent()).toContain('continuation');
    expect(await card.getByTestId('job-cancel').isDisabled()).toBe(true);
    expect(await card.getByTestId('job-retry').isDisabled()).toBe(true);

    // The continuation, marked as such with its job id.
    const continuation = page.locator('[data-testid=message][data-kind=continuation]');
    await continuation.waitFor();
    expect(await continuation.getByTestId('continuation-badge').textContent()).toContain(jobId);
    expect(await continuation.locator('.content').textContent()).toContain('"hi"');
    await expectShownExactlyAsStored(sessionId);
    expect(await page.getByTestId('live-turn').count()).toBe(0);
  });

  it('resumes with since after a 4008 close and shows what happened while it was away, once', async () => {
    const sessionId = (await currentSessionId()) ?? '';
    await waitForFeed('live');
    const seqBefore = Number(await page.getByTestId('feed-status').getAttribute('data-seq'));
    const urlsBefore = (await pageValue<string[]>('window.__wsUrls')).length;

    // Close the socket as the server does for a slow client, and keep new connections failing for a while.
    await page.evaluate(`window.__holdWs = true; window.__sockets.at(-1).close(4008, 'slow consumer (test)')`);
    await page.getByTestId('feed-status').getByText(/closed 4008/).waitFor();

    // Meanwhile: a chat turn, and a job that runs, finishes and is followed up.
    await api('POST', `/v1/sessions/${sessionId}/messages`, { content: 'said while the page was away' });
    await api('POST', `/v1/sessions/${sessionId}/messages`, { content: 'bg echo back again' });
    const job = await waitUntil('the second job to be followed up', async () => {
      const { jobs } = await api<{ jobs: ApiJob[] }>('GET', `/v1/jobs?sessionId=${sessionId}`);
      return jobs.length === 2 && jobs.every((j) => j.state === 'followedUp') ? jobs : null;
    });
    const newJob = job.find((j) => !job.every((k) => k === j) && j.exitCode === 0 && j.state === 'followedUp');
    expect(newJob).toBeDefined();
    await waitUntil('the session to be idle', async () => {
      const session = await api<{ lock?: { lock: string } }>('GET', `/v1/sessions/${sessionId}`);
      return session.lock?.lock === 'idle';
    });
    const stored = (await api<{ messages: ApiMessage[] }>('GET', `/v1/sessions/${sessionId}/messages`)).messages;
    expect((await shownMessageIds()).length).toBeLessThan(stored.length);
    expect(await feedState()).not.toBe('live');

    await page.evaluate('window.__holdWs = false');
    await waitForFeed('live', 30_000);
    const asked = (await pageValue<string[]>('window.__wsUrls')).slice(urlsBefore);
    expect(asked.length).toBeGreaterThan(0);
    for (const url of asked) expect(new URL(url).searchParams.get('since')).toBe(String(seqBefore));

    await expectShownExactlyAsStored(sessionId);
    await page.getByTestId('message').getByText('You said: said while the page was away').waitFor();
    expect(await page.locator('[data-testid=message][data-kind=continuation]').count()).toBe(2);
    expect(await page.locator('[data-testid=job-card][data-state=followedUp]').count()).toBe(2);
    expect(Number(await page.getByTestId('feed-status').getAttribute('data-seq'))).toBeGreaterThan(seqBefore);

    mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    expect(existsSync(SCREENSHOT)).toBe(true);
  });
});
