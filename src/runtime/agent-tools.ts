/**
 * The tools an agent is lent in a session: `run_command` in the owner's
 * sandbox and work directory, `start_background_job` as a job of the session.
 */
import type { AgentTools } from './agents/agent.js';
import { runCommand } from './run-command.js';
import type { Sandbox } from './sandbox/sandbox.js';
import type { WorkDirs } from './sandbox/work-dirs.js';

export interface AgentToolsDeps {
  workDirs: WorkDirs;
  sandbox: Sandbox;
  startJob(owner: string, sessionId: string, command: string): Promise<{ id: string }>;
}

export function agentTools(deps: AgentToolsDeps, owner: string, sessionId: string): AgentTools {
  return {
    runCommand: async (command, signal) => {
      const workDir = await deps.workDirs.ensure(owner);
      const launch = deps.sandbox.launch({ workDir, cwd: workDir, shellCommand: command });
      return runCommand(launch, { cwd: workDir, signal });
    },
    startBackgroundJob: async (command) => {
      const job = await deps.startJob(owner, sessionId, command);
      return { jobId: job.id };
    },
  };
}
