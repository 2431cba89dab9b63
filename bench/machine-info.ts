import { cpus, totalmem } from 'node:os';

/** One line naming the machine a benchmark ran on, so figures can be compared. */
export function machineInfo(): string {
  const cpu = cpus();
  return `node ${process.version}, ${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}
