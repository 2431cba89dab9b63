/**
 * The dashboard when things go wrong: an agent that cannot be reached (an
 * `sse` agent on a closed port), so that follow-ups retry, fail and leave a
 * notice; retry and cancel from the page; a live turn that fails.
 */

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatonProcess } from '../support/baton-process.js';
import {
  apiClient,
  DOM_PROBE,
  expectShownExactlyAsStored,
  openDashboard,
  statesShown,
  type OpenDashboard,
} from './page-helpers.js';
import type { ApiJob } from './page-helpers.js';

let open: OpenDashboard | null = null;
let page: Page;
let sessionId = '';

function live(): BatonProcess {
  if (!open) throw new Error('the server is not running');
  return open.server;
}
const api = apiClient(live);

beforeAll(async () => {
  open = await openDashboard({
    name: 'unreachable agent',
    extraArgs: [
      '--agent',
      'sse',
      '--agent-url',
      'http://127.0.0.1:9/agent',
      '--max-attempts',
      '2',
      '--retry-base-ms',
      '300',
      '--retry-max-ms',
      '600',
    ],
  });
  ({ page, sessionId } = open);
  await page.evaluate(DOM_PROBE);
});

afterAll(async () => open?.close());

describe('dashboard with a failing agent', () => {
  it('shows the retries, the failed state and the failure notice, and retries from the notice', async () => {
    const job = await api<ApiJob>('POST', `/v1/sessions/${sessionId}/jobs`, { command: 'echo x' });
    const card = page.locator(`[data-testid=job-card][data-job-id="${job.id}"]`);
    await page.waitForSelector(
      `[data-testid=job-card][data-job-id="${job.id}"][data-state=failed]`,
    );

    expect(await statesShown(page, job.id)).toEqual([
      'running',
      'completed',
      'awaitingIdleSession',
      'continuing',
      'retrying',
      'awaitingIdleSession',
      'continuing',
      'failed',
    ]);
    expect(await card.locator('[data-node=failed]').getAttribute('data-current')).toBe('true');
    expect(await card.locator('[data-node=retrying]').getAttribute('data-visited')).toBe('true');
    expect(await card.locator('[data-node=followedUp]').getAttribute('data-visited')).toBe('false');
    expect(
      await card.locator('path[data-from=continuing][data-to=retrying]').getAttribute('class'),
    ).toContain('taken');
    await card
      .getByTestId('job-exit-code')
      .getByText('0', { exact: true })
      .waitFor({ timeout: 5_000 });
    expect(await card.getByTestId('job-attempts').textContent()).toBe('2');
    expect(await card.getByTestId('job-why').textContent()).toContain('gave up after 2 attempts');
    expect(await card.getByTestId('job-retry').isEnabled()).toBe(true);
    expect(await card.getByTestId('job-cancel').isDisabled()).toBe(true);

    const notice = page.getByRole('note', { name: 'Follow-up failed' });
    await notice.waitFor();
    expect(await notice.getAttribute('data-kind')).toBe('notice');
    expect(await notice.textContent()).toContain(job.id);

    await notice.getByRole('button', { name: 'Retry follow-up' }).click();
    await page.getByRole('note', { name: 'Follow-up failed' }).nth(1).waitFor({ timeout: 15_000 });
    await page.waitForSelector(
      `[data-testid=job-card][data-job-id="${job.id}"][data-state=failed]`,
    );
    const seen = await statesShown(page, job.id);
    expect(seen.slice(7, 9)).toEqual(['failed', 'awaitingIdleSession']);
    expect(seen.at(-1)).toBe('failed');
    expect(
      await card
        .locator('path[data-from=failed][data-to=awaitingIdleSession]')
        .getAttribute('class'),
    ).toContain('taken');
    await expectShownExactlyAsStored(page, api, sessionId);
  });

  it('cancels a running job from its card', async () => {
    const job = await api<ApiJob>('POST', `/v1/sessions/${sessionId}/jobs`, {
      command: 'sleep 30',
    });
    const card = page.locator(`[data-testid=job-card][data-job-id="${job.id}"]`);
    await page.waitForSelector(
      `[data-testid=job-card][data-job-id="${job.id}"][data-state=running]`,
    );
    await card.getByRole('button', { name: `Cancel job ${job.id}` }).click();
    await page.waitForSelector(
      `[data-testid=job-card][data-job-id="${job.id}"][data-state=cancelled]`,
    );
    expect(await card.locator('[data-node=cancelled]').getAttribute('data-current')).toBe('true');
    await card.getByTestId('job-outcome').getByText('cancelled').waitFor({ timeout: 5_000 });
    expect(await card.getByTestId('job-cancel').isDisabled()).toBe(true);
    expect((await api<ApiJob>('GET', `/v1/jobs/${job.id}`)).state).toBe('cancelled');
  });

  it('says when a live turn fails after its retries, with the stored notice for the person', async () => {
    await page.getByLabel('Message', { exact: true }).fill('hello?');
    await page.getByRole('button', { name: 'Send' }).click();
    // The stored notice takes the place of the reply being written, and stays after a reload.
    const notice = page.getByRole('note', { name: 'Message not answered' });
    await notice.waitFor({ timeout: 15_000 });
    expect(await notice.textContent()).toContain(
      'I could not answer this message: I tried 2 times',
    );
    expect(await notice.textContent()).toContain('connection to the agent failed');
    expect(await page.getByTestId('live-turn').count()).toBe(0);
    await expectShownExactlyAsStored(page, api, sessionId);
  });
});
