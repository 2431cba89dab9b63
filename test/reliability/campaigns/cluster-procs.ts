/**
 * The cluster campaign's `baton serve` processes on one PostgreSQL schema.
 * Each slot keeps its data dir for the whole campaign and is restarted on it
 * after every kill, only once the killed process has exited: a data dir never
 * has two live processes (`baton serve` refuses that). Each start of a slot
 * is a generation; the driver remembers which generation it asked, so that a
 * request that got no answer is looked up only once that generation is gone
 * and can no longer act on it.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnServe, type ServeProcess } from './cli.js';
import type { Rng } from './rng.js';

export interface Generation {
  slot: number;
  /** 0 for the first start of the slot, then one more per restart. */
  n: number;
  proc: ServeProcess;
  /** The signal the campaign sent it, or null: an exit without one is a fault. */
  signalled: NodeJS.Signals | null;
  exited: boolean;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Its coordinator's host id (from the listening line): how `sessions.owner_host` names it. */
  hostId: string | null;
  /**
   * The `application_name` of every PostgreSQL connection it opens: once it
   * has exited, its backends can still commit what it had sent; they are
   * found by this name.
   */
  appName: string;
}

export interface SlotsOptions {
  dirs: string[];
  /** The arguments of a generation, given the `application_name` its connections must carry. */
  args: (appName: string) => string[];
  env: Record<string, string>;
  /** Where the whole log of a process that ended unexpectedly is written (made when needed). */
  logDir: string;
}

/** SIGTERM must end a process within this (README: 30 s whatever happens), else it is a fault. */
const TERM_DEADLINE_MS = 35_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

export class ServeSlots {
  readonly current: (Generation | null)[];
  readonly all: Generation[] = [];
  /** Exits nobody asked for, and SIGTERMs that ended badly, with the tail of the log. */
  readonly unexpected: string[] = [];
  /** Called when a generation prints its listening line (feed clients attach to it). */
  onListening: ((gen: Generation) => void) | null = null;
  /** Set at the end: from then on an exit is expected. */
  closing = false;
  private startupMs = 2000;

  constructor(private readonly options: SlotsOptions) {
    this.current = options.dirs.map(() => null);
  }

  /** Typical time from spawn to the listening line, ms (a moving average). */
  get typicalStartupMs(): number {
    return this.startupMs;
  }

  /** Spawns the slot's next generation on its data dir; returns at once. */
  start(slot: number): Generation {
    // After the end (or a deadline) nothing may start again behind the cleanup.
    if (this.closing) throw new Error('the campaign is over: no process starts any more');
    const dir = this.options.dirs[slot];
    if (dir === undefined) throw new Error(`no slot ${slot}`);
    const prior = this.current[slot];
    if (prior && !prior.exited) throw new Error(`slot ${slot} still has a live process`);
    const n = prior ? prior.n + 1 : 0;
    // Unique among concurrent runs too: other test files share the database.
    const appName = `baton-cluster-${process.pid}-s${slot}g${n}`;
    const proc = spawnServe(dir, this.options.args(appName), this.options.env);
    const gen: Generation = {
      slot,
      n,
      proc,
      signalled: null,
      exited: false,
      exit: null,
      hostId: null,
      appName,
    };
    this.current[slot] = gen;
    this.all.push(gen);
    void proc.listening.then(
      () => {
        gen.hostId = hostIdIn(proc.log);
        if (proc.listeningAt !== null) {
          this.startupMs = this.startupMs * 0.7 + (proc.listeningAt - proc.spawnedAt) * 0.3;
        }
        if (!gen.signalled) this.onListening?.(gen);
      },
      () => undefined,
    );
    void proc.exited.then((exit) => {
      gen.exited = true;
      gen.exit = exit;
      if (gen.signalled !== null || this.closing) return;
      this.fault(gen, `exited (${exit.code ?? exit.signal}) unasked`);
      // Started again, so that the campaign goes on with all its processes (bounded: it fails anyway).
      if (this.unexpected.length > 20) return;
      setTimeout(() => {
        if (this.current[slot] === gen && !this.closing) this.start(slot);
      }, 200);
    });
    return gen;
  }

  /** A random generation that listens and was not signalled, or null when none does. */
  pick(r: Rng): Generation | null {
    const up = this.current.filter(
      (g): g is Generation => g !== null && g.proc.url !== null && !g.signalled && !g.exited,
    );
    return up.length === 0 ? null : r.pick(up);
  }

  /** The slot whose live process has this host id, or null. */
  slotOfHost(hostId: string): number | null {
    const gen = this.current.find((g) => g !== null && !g.exited && g.hostId === hostId);
    return gen ? gen.slot : null;
  }

  /** Resolves once every slot's current generation listens (or throws after `timeoutMs`). */
  async allListening(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waiting = this.current.filter((g) => !g || g.proc.url === null || g.exited);
      if (waiting.length === 0) return;
      if (Date.now() > deadline) throw new Error('not every process is listening');
      await sleep(50);
    }
  }

  /**
   * Sends `signal` to the slot's current generation and waits for its exit.
   * A SIGTERM must end it with code 0 (or by the signal itself, when it came
   * before the process had printed anything: node had not even loaded Baton).
   */
  async signal(slot: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<Generation | null> {
    const gen = this.current[slot];
    if (!gen || gen.exited) return null;
    gen.signalled = signal;
    const printed = gen.proc.log.length > 0;
    gen.proc.child.kill(signal);
    const timer = setTimeout(() => {
      this.fault(gen, `still ran ${TERM_DEADLINE_MS} ms after SIGTERM`);
      gen.proc.child.kill('SIGKILL');
    }, TERM_DEADLINE_MS);
    const exit = await gen.proc.exited;
    clearTimeout(timer);
    const earlyBySignal = exit.signal === 'SIGTERM' && !printed;
    if (signal === 'SIGTERM' && exit.code !== 0 && !earlyBySignal) {
      this.fault(gen, `ended with ${exit.code ?? exit.signal} after SIGTERM`);
    }
    return gen;
  }

  /** Records a process that did not end as asked, with the tail of its log; keeps the whole log. */
  private fault(gen: Generation, what: string): void {
    const name = `slot${gen.slot}-gen${gen.n}-pid${gen.proc.pid}.log`;
    try {
      mkdirSync(this.options.logDir, { recursive: true });
      writeFileSync(join(this.options.logDir, name), gen.proc.log.join('\n') + '\n');
    } catch {
      // The tail below still says what happened.
    }
    const where = join(this.options.logDir, name);
    this.unexpected.push(`slot ${gen.slot}#${gen.n} ${what} (log: ${where}):\n${tail(gen.proc)}`);
  }

  /** SIGTERM to every live process at the end; resolves with their exit codes. */
  async stopAll(): Promise<(number | null)[]> {
    this.closing = true;
    const gens = this.current.filter((g): g is Generation => g !== null && !g.exited);
    await Promise.all(gens.map((g) => this.signal(g.slot, 'SIGTERM')));
    return gens.map((g) => g.exit?.code ?? null);
  }

  /** SIGKILLs whatever still runs (cleanup, also after a failed assertion). */
  async killAll(): Promise<void> {
    this.closing = true;
    await Promise.all(this.all.filter((g) => !g.exited).map((g) => g.proc.kill()));
  }

  /** Pids of generations that have not exited. */
  alive(): number[] {
    return this.all.filter((g) => !g.exited).map((g) => g.proc.pid);
  }
}

function hostIdIn(log: readonly string[]): string | null {
  for (const line of log) {
    if (!line.includes('baton listening')) continue;
    try {
      const hostId: unknown = Reflect.get(JSON.parse(line) as object, 'hostId');
      if (typeof hostId === 'string') return hostId;
    } catch {
      // Not a JSON line.
    }
  }
  return null;
}

function tail(proc: ServeProcess): string {
  return proc.log
    .slice(-6)
    .map((line) => line.slice(0, 300))
    .join('\n');
}
