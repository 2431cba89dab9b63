/**
 * The tools an agent is lent in a turn: `run_command` in the owner's sandbox
 * and work directory, `start_background_job` as a job of the session, at most
 * once per tool call of the turn.
 */
import type { AgentTools } from './agents/agent.js';
import { runCommand } from './run-command.js';
import type { Sandbox } from './sandbox/sandbox.js';
import type { WorkDirs } from './sandbox/work-dirs.js';
import { toolJobId } from './turn-journal.js';

export interface AgentToolsDeps {
  workDirs: WorkDirs;
  sandbox: Sandbox;
  /** Starts the job under this id, or answers with the job already started under it. */
  startJobOnce(
    owner: string,
    sessionId: string,
    jobId: string,
    command: string,
  ): Promise<{ id: string }>;
}

export function agentTools(
  deps: AgentToolsDeps,
  owner: string,
  sessionId: string,
  turnKey: string,
): AgentTools {
  return {
    runCommand: async (command, signal) => {
      const workDir = await deps.workDirs.ensure(owner);
      const launch = deps.sandbox.launch({ workDir, cwd: workDir, shellCommand: command });
      return runCommand(launch, { cwd: workDir, signal });
    },
    startBackgroundJob: async (command, callKey) => {
      const job = await deps.startJobOnce(owner, sessionId, toolJobId(turnKey, callKey), command);
      return { jobId: job.id };
    },
  };
}
