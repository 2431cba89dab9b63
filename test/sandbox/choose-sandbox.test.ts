import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  chooseSandbox,
  SandboxChoiceError,
  type SandboxRequest,
} from '../../src/runtime/sandbox/choose-sandbox.js';
import { DEFAULT_RESOURCE_LIMITS } from '../../src/runtime/sandbox/sandbox-config.js';
import { installedTools } from '../../src/runtime/sandbox/sandbox.js';

const TOOLS = installedTools();
const BWRAP = TOOLS.bwrap;

describe('chooseSandbox', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-choose-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const request = (over: Partial<SandboxRequest>): SandboxRequest => ({
    kind: undefined,
    network: undefined,
    owners: 1,
    env: {},
    limits: DEFAULT_RESOURCE_LIMITS,
    readOnlyPaths: [],
    supportDir: dir,
    workRoot: join(dir, 'work'),
    tools: TOOLS,
    ...over,
  });
  const missing = { ...TOOLS, bwrap: null };
  // A bwrap that is there but does not work (as where user namespaces are forbidden).
  const broken = { ...TOOLS, bwrap: '/bin/false' };

  it('takes bubblewrap when it works, network off with several owners and on with one', async () => {
    expect(BWRAP).not.toBeNull();
    const several = await chooseSandbox(request({ owners: 2 }));
    expect(several.sandbox.config).toMatchObject({ kind: 'bwrap', network: false });
    expect(several.warnings).toEqual([]);
    const one = await chooseSandbox(request({ owners: 1 }));
    expect(one.sandbox.config).toMatchObject({ kind: 'bwrap', network: true });
    const asked = await chooseSandbox(request({ owners: 2, network: true }));
    expect(asked.sandbox.config.network).toBe(true);
  });

  it('refuses to start a server of several owners without a working sandbox', async () => {
    for (const tools of [missing, broken]) {
      const refusal = chooseSandbox(request({ owners: 3, tools }));
      await expect(refusal).rejects.toBeInstanceOf(SandboxChoiceError);
      await expect(refusal).rejects.toThrow(
        /^3 owners are configured and bubblewrap does not work here \(.+\): install it with "apt-get install bubblewrap", or start with --sandbox none/,
      );
    }
  });

  it('starts a single-owner server with none, and says how to install bubblewrap', async () => {
    const choice = await chooseSandbox(request({ owners: 1, tools: broken }));
    expect(choice.sandbox.config).toMatchObject({ kind: 'none', network: true });
    expect(choice.warnings).toEqual([
      expect.stringMatching(/^jobs run without a sandbox: .*apt-get install bubblewrap$/),
    ]);
  });

  it('refuses --sandbox bwrap where bubblewrap does not work', async () => {
    await expect(chooseSandbox(request({ kind: 'bwrap', tools: missing }))).rejects.toThrow(
      /^--sandbox bwrap: bubblewrap does not work here \(bubblewrap \(bwrap\) is not installed\)/,
    );
  });

  it('runs none when told, warns with several owners, and cannot take the network away', async () => {
    const told = await chooseSandbox(request({ kind: 'none', owners: 2 }));
    expect(told.sandbox.config).toMatchObject({ kind: 'none', network: true });
    expect(told.warnings[0]).toMatch(/--sandbox none.*2 owners' jobs can read each other's work/);
    await expect(chooseSandbox(request({ kind: 'none', network: false }))).rejects.toThrow(
      '--job-network off needs --sandbox bwrap',
    );
    await expect(
      chooseSandbox(request({ owners: 1, network: false, tools: missing })),
    ).rejects.toThrow(/^--job-network off needs the bwrap sandbox/);
  });

  it('warns when no limits can be set', async () => {
    const choice = await chooseSandbox(request({ tools: { ...TOOLS, prlimit: null } }));
    expect(choice.warnings).toEqual([
      'prlimit (util-linux) is not installed: jobs run without resource limits',
    ]);
  });
});
