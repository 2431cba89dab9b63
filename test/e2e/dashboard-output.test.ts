/**
 * The dashboard tails a running job's output: the card shows each line as the
 * job prints it, before the job ends, and the whole output once it has.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, openDashboard, type OpenDashboard } from './page-helpers.js';
import type { ApiJob } from './page-helpers.js';

let open: OpenDashboard | null = null;
function live(): OpenDashboard {
  if (!open) throw new Error('the dashboard is not open');
  return open;
}
const api = apiClient(() => live().server);

beforeAll(async () => {
  open = await openDashboard({ name: 'output' });
});
afterAll(async () => open?.close());

describe('dashboard: live job output', () => {
  it("shows a running job's output as it is printed", async () => {
    const { page, dataDir, sessionId } = live();
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
    // The stored output comes with the job read right after its last state frame.
    await output.getByText('step two').waitFor({ timeout: 5_000 });
    expect(await output.textContent()).toBe('step one\nstep two\n');
  });
});
