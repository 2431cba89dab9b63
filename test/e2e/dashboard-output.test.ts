/**
 * The dashboard tails a running job's output: the card shows each line as the
 * job prints it, before the job ends, and the whole output once it has.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBaton, type BatonProcess } from '../support/baton-process.js';
import { apiClient, createSessionInPage, launchChromium, waitForFeed } from './page-helpers.js';
import type { ApiJob } from './page-helpers.js';

let dataDir = '';
let server: BatonProcess | null = null;
let browser: Browser | null = null;
let page: Page;
let sessionId = '';

function live(): BatonProcess {
  if (!server) throw new Error('the server is not running');
  return server;
}
const api = apiClient(live);

beforeAll(async () => {
  browser = await launchChromium();
  dataDir = mkdtempSync(join(tmpdir(), 'baton-e2e-output-'));
  server = await startBaton({ dataDir, port: 0 });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on('pageerror', (error) => console.error('page error:', error));
  await page.goto(live().dashboard);
  await waitForFeed(page, 'live');
  sessionId = await createSessionInPage(page, 'live output');
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('dashboard: live job output', () => {
  it("shows a running job's output as it is printed", async () => {
    const job = await api<ApiJob>('POST', `/v1/sessions/${sessionId}/jobs`, {
      command: 'echo step one; while [ ! -f go ]; do sleep 0.05; done; echo step two',
    });
    const card = page.locator(`[data-testid=job-card][data-job-id="${job.id}"]`);
    const output = card.getByTestId('job-output');
    await output.getByText('step one').waitFor({ timeout: 10_000 });
    expect(await card.getAttribute('data-state')).toBe('running');
    expect(await output.textContent()).not.toContain('step two');

    writeFileSync(join(dataDir, 'work', 'default', 'go'), '');
    await page.waitForSelector(
      `[data-testid=job-card][data-job-id="${job.id}"][data-state=followedUp]`,
      { timeout: 15_000 },
    );
    expect(await output.textContent()).toBe('step one\nstep two\n');
  });
});
