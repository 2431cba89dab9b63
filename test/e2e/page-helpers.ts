/**
 * What the dashboard e2e tests share: the system Chromium, probes injected
 * into the page, and a small API client to compare the page with the store.
 */

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { expect } from 'vitest';
import { startBaton, type BatonProcess } from '../support/baton-process.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface ApiMessage {
  id: string;
  role: string;
  content: string;
  metadata: Record<string, unknown>;
}

export interface ApiJob {
  id: string;
  state: string;
  outcome: string | null;
  exitCode: number | null;
  history: { state: string; at: string }[];
}

/** The system Chromium, headless; never a downloaded browser. Fails clearly when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the dashboard e2e tests drive the system Chromium (install it with \`apt-get install -y chromium\`); they never download a browser`,
    );
  }
  return chromium.launch({
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
}

/**
 * Injected before the page's own scripts: records every WebSocket the page
 * opens (and the address it asked for), and can hold new connections back
 * (they go to a closed port and fail, as during an outage).
 */
export const SOCKET_PROBE = `
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
 * kept) in `__stateLog`, and every live-turn bubble with the text it had when
 * it went away in `__liveTurns`.
 */
export const DOM_PROBE = `
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

/** The states a job card showed, in order, without repeats (needs {@link DOM_PROBE}). */
export async function statesShown(page: Page, jobId: string): Promise<string[]> {
  const log = (await page.evaluate('window.__stateLog')) as { id: string; state: string }[];
  return log
    .filter((entry) => entry.id === jobId)
    .map((entry) => entry.state)
    .filter((state, i, all) => state !== all[i - 1]);
}

/** Calls the API as the test's owner. */
export function apiClient(server: () => BatonProcess) {
  return async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { url, token } = server();
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return (text ? JSON.parse(text) : null) as T;
  };
}

export type Api = ReturnType<typeof apiClient>;

/** Polls `probe` until it returns something other than null/false. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | null | false>,
  timeoutMs = 30_000,
): Promise<T> {
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
      throw new Error(
        `timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function shownMessageIds(page: Page): Promise<string[]> {
  return page
    .getByTestId('message')
    .evaluateAll((els) => els.map((el) => el.getAttribute('data-message-id') ?? ''));
}

/** Waits until the page shows exactly the stored messages, each once, in order. */
export async function expectShownExactlyAsStored(
  page: Page,
  api: Api,
  sessionId: string,
): Promise<string[]> {
  let stored: string[] = [];
  let shown: string[] = [];
  await waitUntil(
    'the page to show every stored message exactly once',
    async () => {
      const { messages } = await api<{ messages: ApiMessage[] }>(
        'GET',
        `/v1/sessions/${sessionId}/messages`,
      );
      stored = messages.map((m) => m.id);
      shown = await shownMessageIds(page);
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

export async function waitForFeed(page: Page, state: string, timeoutMs = 30_000): Promise<void> {
  await page.waitForSelector(`[data-testid=feed-status][data-state=${state}]`, {
    timeout: timeoutMs,
  });
}

/** Creates a session through the page's form and returns its id once it is selected. */
export async function createSessionInPage(page: Page, title: string): Promise<string> {
  await page.getByLabel('New session title').fill(title);
  await page.getByRole('button', { name: 'Create' }).click();
  const item = page.locator('[data-testid=session-item].current');
  await item.getByText(title, { exact: true }).waitFor();
  const id = await item.getAttribute('data-session-id');
  if (!id) throw new Error('the new session has no id in the list');
  return id;
}

/** A `baton serve` with the dashboard open in Chromium on a session of its own. */
export interface OpenDashboard {
  server: BatonProcess;
  page: Page;
  dataDir: string;
  sessionId: string;
  close(): Promise<void>;
}

/** Starts `baton serve` on a fresh data dir, opens its dashboard and creates a session there. */
export async function openDashboard(options: {
  name: string;
  extraArgs?: string[];
}): Promise<OpenDashboard> {
  const browser = await launchChromium();
  const dataDir = mkdtempSync(join(tmpdir(), `baton-e2e-${options.name.replace(/\W+/g, '-')}-`));
  let server: BatonProcess | null = null;
  const close = async () => {
    await browser.close().catch(() => undefined);
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    server = await startBaton({
      dataDir,
      port: 0,
      ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
    });
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (error) => console.error('page error:', error));
    await page.goto(server.dashboard);
    await waitForFeed(page, 'live');
    const sessionId = await createSessionInPage(page, options.name);
    return { server, page, dataDir, sessionId, close };
  } catch (error) {
    await close();
    throw error;
  }
}
