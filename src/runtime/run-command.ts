import { spawn } from 'node:child_process';
import type { Launch } from './sandbox/sandbox.js';

export interface CommandResult {
  output: string;
  exitCode: number | null;
}

/**
 * Runs a short command for an agent's `run_command` tool, as the sandbox
 * launched it (`launch`: the owner's sandbox, a clean environment): its own
 * process group, killed as a whole when the command exits (what it left in
 * the background goes too), on abort or after `timeoutMs`, output
 * capped to the last `maxBytes` so a chatty command cannot grow memory.
 */
export function runCommand(
  launch: Launch,
  options: { cwd: string; signal: AbortSignal; timeoutMs?: number; maxBytes?: number },
): Promise<CommandResult> {
  const maxBytes = options.maxBytes ?? 16_384;
  const [file, ...args] = launch.argv as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: launch.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let chunks: Buffer[] = [];
    let size = 0;
    let dropped = 0;
    const take = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      while (size > maxBytes && chunks.length > 1) {
        const first = chunks.shift() as Buffer;
        size -= first.length;
        dropped += first.length;
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const kill = () => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    };
    const timer = setTimeout(kill, options.timeoutMs ?? 60_000);
    options.signal.addEventListener('abort', kill, { once: true });
    const done = (exitCode: number | null, extra = '') => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', kill);
      let text = Buffer.concat(chunks).toString('utf8');
      chunks = [];
      if (text.length > maxBytes) text = text.slice(text.length - maxBytes);
      const head = dropped > 0 ? `…[${dropped} earlier bytes dropped]…\n` : '';
      resolve({ output: head + text + extra, exitCode });
    };
    // What the command left running in its group (or sandbox) must not hold
    // the pipes open, and does not outlive the tool call.
    child.once('exit', kill);
    child.on('error', (error) => done(null, `\n${error.message}`));
    child.on('close', (code, signal) => done(code ?? (signal ? 128 : null)));
  });
}
