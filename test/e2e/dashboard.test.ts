/**
 * The dashboard end to end: a real `baton serve` (offline agent, temp data
 * dir) and the system Chromium driven by playwright-core. The page is used as
 * a person would (labels, roles, test ids); the API is read directly only to
 * compare what the page shows with what is stored, and to act while the
 * page is cut off.
 */

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startBaton } from '../support/baton-process.js';
import type { BatonProcess } from '../support/baton-process.js';
import {
  apiClient,
  createSessionInPage,
  DOM_PROBE,
  expectShownExactlyAsStored,
  launchChromium,
  shownMessageIds,
  SOCKET_PROBE,
  statesShown,
  waitForFeed,
  waitUntil,
} from './page-helpers.js';
import type { ApiJob, ApiMessage } from './page-helpers.js';

const SCREENSHOT = join(REPO_ROOT, 'test-artifacts', 'dashboard.png');
const LIFECYCLE = ['running', 'completed', 'awaitingIdleSession', 'continuing', 'followedUp'];

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
const api = apiClient(live);

async function pageValue<T>(expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

async function feedSeq(): Promise<number> {
  return Number(await page.getByTestId('feed-status').getAttribute('data-seq'));
}

async function currentSessionId(): Promise<string> {
  const id = await page
    .locator('[data-testid=session-item].current')
    .getAttribute('data-session-id');
  if (!id) throw new Error('no session is selected');
  return id;
}

beforeAll(async () => {
  browser = await launchChromium();
  dataDir = mkdtempSync(join(tmpdir(), 'baton-e2e-'));
  server = await startBaton({ dataDir, port: 0 });
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
    await waitForFeed(page, 'live');
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
    await waitForFeed(page, 'live');
    expect(await dialog.isVisible()).toBe(false);
    expect(await pageValue<string>(`localStorage.getItem('baton.token')`)).toBe(live().token);
  });

  it('creates a session, shows its lock as idle, and deletes it', async () => {
    const id = await createSessionInPage(page, 'scratch');
    await page.waitForSelector(
      `[data-testid=session-item][data-session-id="${id}"][data-lock=idle]`,
    );
    expect(await page.getByTestId('session-lock').textContent()).toBe('Lock: idle');

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete session scratch' }).click();
    await page
      .locator(`[data-testid=session-item][data-session-id="${id}"]`)
      .waitFor({ state: 'detached' });
    const { sessions } = await api<{ sessions: { id: string }[] }>('GET', '/v1/sessions');
    expect(sessions.map((s) => s.id)).not.toContain(id);
  });

  it('follows a background job from running to followedUp across a server restart and shows its continuation', async () => {
    const sessionId = await createSessionInPage(page, 'e2e job');
    await page.evaluate(DOM_PROBE);

    await page.getByLabel('Message', { exact: true }).fill('bg sleep 1; echo hi');
    await page.getByRole('button', { name: 'Send' }).click();
    await page
      .locator('[data-testid=message][data-role=user]')
      .getByText('bg sleep 1; echo hi')
      .waitFor();
    // The live turn streams in, then becomes the stored reply with its tool card.
    const reply = page.locator('[data-testid=message][data-role=assistant]').first();
    await reply.getByTestId('tool-card').getByText('start_background_job').waitFor();
    const card = page.getByTestId('job-card').first();
    await card.waitFor();
    const jobId = (await card.getAttribute('data-job-id')) ?? '';
    expect(jobId).toMatch(/^\S+$/);
    expect(await card.getByTestId('job-lifecycle').getAttribute('aria-label')).toContain(
      'now running',
    );

    const { messages } = await api<{ messages: ApiMessage[] }>(
      'GET',
      `/v1/sessions/${sessionId}/messages`,
    );
    const stored = messages.find((m) => m.role === 'assistant');
    const streamed =
      await pageValue<{ turnId: string | null; jobId: string | null; text: string }[]>(
        'window.__liveTurns',
      );
    expect(streamed).toContainEqual({
      turnId: stored?.metadata['turnId'],
      jobId: null,
      text: stored?.content,
    });

    // Drop the feed for real while the job runs: stop the service and start it again on the same port.
    expect(await feedSeq()).toBeGreaterThan(0);
    const port = live().port;
    await live().stop();
    server = null;
    await waitForFeed(page, 'reconnecting', 10_000);
    server = await startBaton({ dataDir, port });

    await page.waitForSelector(
      `[data-testid=job-card][data-job-id="${jobId}"][data-state=followedUp]`,
      {
        timeout: 60_000,
      },
    );
    await waitForFeed(page, 'live');
    expect(socketUrls.slice(1).some((url) => /[?&]since=\d+/.test(url))).toBe(true);

    // Every state on the way was shown, in lifecycle order.
    const seen = await statesShown(page, jobId);
    expect(seen[0]).toBe('running');
    expect(seen.at(-1)).toBe('followedUp');
    expect(seen).toEqual([...seen].sort((a, b) => LIFECYCLE.indexOf(a) - LIFECYCLE.indexOf(b)));
    expect(seen.length).toBeGreaterThanOrEqual(3);
    for (const state of LIFECYCLE) {
      expect(await card.locator(`[data-node=${state}]`).getAttribute('data-visited')).toBe('true');
    }
    expect(await card.locator('[data-node=followedUp]').getAttribute('data-current')).toBe('true');
    expect(await card.locator('[data-node=retrying]').getAttribute('data-visited')).toBe('false');
    // `job.state` frames carry no exit code or output: the page reads the job again right after.
    await card
      .getByTestId('job-exit-code')
      .getByText('0', { exact: true })
      .waitFor({ timeout: 5_000 });
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
    await expectShownExactlyAsStored(page, api, sessionId);
    expect(await page.getByTestId('live-turn').count()).toBe(0);
  });

  it('resumes with since after a 4008 close and shows what happened while it was away, once', async () => {
    const sessionId = await currentSessionId();
    await waitForFeed(page, 'live');
    const seqBefore = await feedSeq();
    const urlsBefore = (await pageValue<string[]>('window.__wsUrls')).length;

    // Close the socket as the server does for a slow client, and keep new connections failing for a while.
    await page.evaluate(
      `window.__holdWs = true; window.__sockets.at(-1).close(4008, 'slow consumer (test)')`,
    );
    await page
      .getByTestId('feed-status')
      .getByText(/closed 4008/)
      .waitFor();

    // Meanwhile: a chat turn, and a job that runs, finishes and is followed up.
    await api('POST', `/v1/sessions/${sessionId}/messages`, {
      content: 'said while the page was away',
    });
    await api('POST', `/v1/sessions/${sessionId}/messages`, { content: 'bg echo back again' });
    await waitUntil('the second job to be followed up', async () => {
      const { jobs } = await api<{ jobs: ApiJob[] }>('GET', `/v1/jobs?sessionId=${sessionId}`);
      return jobs.length === 2 && jobs.every((j) => j.state === 'followedUp');
    });
    await waitUntil('the session to be idle', async () => {
      const session = await api<{ lock?: { lock: string } }>('GET', `/v1/sessions/${sessionId}`);
      return session.lock?.lock === 'idle';
    });
    const { messages } = await api<{ messages: ApiMessage[] }>(
      'GET',
      `/v1/sessions/${sessionId}/messages`,
    );
    expect((await shownMessageIds(page)).length).toBeLessThan(messages.length);
    expect(await page.getByTestId('feed-status').getAttribute('data-state')).not.toBe('live');

    await page.evaluate('window.__holdWs = false');
    await waitForFeed(page, 'live', 30_000);
    const asked = (await pageValue<string[]>('window.__wsUrls')).slice(urlsBefore);
    expect(asked.length).toBeGreaterThan(0);
    for (const url of asked) expect(new URL(url).searchParams.get('since')).toBe(String(seqBefore));

    await expectShownExactlyAsStored(page, api, sessionId);
    await page.getByTestId('message').getByText('You said: said while the page was away').waitFor();
    expect(await page.locator('[data-testid=message][data-kind=continuation]').count()).toBe(2);
    expect(await page.locator('[data-testid=job-card][data-state=followedUp]').count()).toBe(2);
    const newCard = page.locator('[data-testid=job-card]').first();
    expect(await newCard.locator('.job-command').textContent()).toBe('echo back again');
    await newCard.getByTestId('job-output').getByText('back again').waitFor({ timeout: 5_000 });
    expect(await feedSeq()).toBeGreaterThan(seqBefore);
  });

  it('streams a follow-up in as it is written and stores it as the continuation', async () => {
    const sessionId = await currentSessionId();
    await page.getByLabel('Message', { exact: true }).fill('bg echo streamed');
    await page.getByLabel('Message', { exact: true }).press('Enter');
    const card = page.locator('[data-testid=job-card]').first();
    await card.locator('.job-command').getByText('echo streamed', { exact: true }).waitFor();
    const jobId = (await card.getAttribute('data-job-id')) ?? '';
    await page.waitForSelector(
      `[data-testid=job-card][data-job-id="${jobId}"][data-state=followedUp]`,
    );

    const { messages } = await api<{ messages: ApiMessage[] }>(
      'GET',
      `/v1/sessions/${sessionId}/messages`,
    );
    const continuation = messages.find((m) => m.metadata['bgJobId'] === jobId);
    expect(continuation?.role).toBe('assistant');
    await page
      .locator(
        `[data-testid=message][data-message-id="${continuation?.id}"][data-kind=continuation]`,
      )
      .waitFor();
    const streamed =
      await pageValue<{ turnId: string | null; jobId: string | null; text: string }[]>(
        'window.__liveTurns',
      );
    expect(streamed).toContainEqual({ turnId: null, jobId, text: continuation?.content });
    expect(await statesShown(page, jobId)).toEqual(LIFECYCLE);
    await expectShownExactlyAsStored(page, api, sessionId);

    await card
      .getByTestId('job-exit-code')
      .getByText('0', { exact: true })
      .waitFor({ timeout: 5_000 });
    // The chat followed the new messages down: the continuation is in view.
    const gap = await page
      .getByTestId('message-list')
      .evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
    expect(gap).toBeLessThan(2);

    mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    expect(existsSync(SCREENSHOT)).toBe(true);
  });
});
