import { expect } from 'vitest';
import { groupsLine, runGroups } from './resources-groups.js';
import { memoryLine, runMemory } from './resources-memory.js';
import { diskLine, mountTmpfs, runFullDisk, unmount, type DiskSummary } from './resources-disk.js';
import { runInjectedFullDisk } from './resources-disk-injected.js';

const MiB = 1024 * 1024;

/** Runs the three resource campaigns, asserts them, and prints the summary last. */
export async function resourcesCampaign(size: {
  bytesPerJob: number;
  forkingJobs: number;
}): Promise<void> {
  const memory = await runMemory(size.bytesPerJob);
  expect(memory.followedUp).toBe(memory.jobs);
  expect(memory.samples).toBeGreaterThan(10);
  expect(memory.peakRss - memory.baselineRss).toBeLessThan(100 * MiB);
  expect(memory.longestOutput).toBeLessThan(9000);
  expect(memory.longestResult).toBeLessThanOrEqual(4000);
  expect(memory.dbBytes).toBeLessThan(16 * MiB);
  expect(memory.orphans).toBe(0);

  const groups = await runGroups(size.forkingJobs);
  expect(groups).toMatchObject({
    timedOut: size.forkingJobs,
    succeeded: size.forkingJobs,
    followedUp: 2 * size.forkingJobs + 1,
    survivors: [],
    bombOutcome: 'timedOut',
  });
  // Its processes in the sandbox, plus the wrapper and bwrap's own outside it.
  expect(groups.bombPeak).toBeGreaterThan(groups.bombLimit / 2);
  expect(groups.bombPeak).toBeLessThanOrEqual(groups.bombLimit + 2);

  const mount = mountTmpfs('8m');
  let disk: DiskSummary;
  try {
    disk = mount ? await runFullDisk(mount) : await runInjectedFullDisk();
  } finally {
    if (mount) unmount(mount);
  }
  expect(disk.otherErrors).toEqual([]);
  expect(disk.unavailable).toBeGreaterThanOrEqual(5);
  expect(disk).toMatchObject({
    refusedButStored: 0,
    aliveWhileFull: true,
    readsWhileFull: true,
    exitCode: 0,
    integrity: 'ok',
    orphans: 0,
  });
  expect(disk.resentAccepted).toBe(disk.resent);
  expect(disk.answeredOnce).toBe(disk.jobs);
  console.log(
    `resources: ${memoryLine(memory)}; ${groupsLine(groups)}; ` +
      diskLine(
        disk,
        mount ? 'tmpfs of 8 MiB' : 'injected write failure: mounting a tmpfs was refused',
      ),
  );
}
