/**
 * The wrapper script that runs a job's command detached from the service.
 *
 * The service may restart while a job runs, so the facts about the job must be
 * written by something that outlives it: the wrapper records its pid, runs the
 * command with its output appended to a log, and records the exit status in a
 * file that appears atomically (written to `exit.tmp`, then renamed), so a
 * reader never sees a half-written status.
 *
 * The command itself is never interpolated into shell text: it is written
 * verbatim to `command.sh` and run as `sh command.sh`, and the job directory
 * and working directory arrive as positional arguments through `execve`, so
 * quotes, `$`, backslashes and newlines reach the shell exactly as given.
 */

/** File names inside a job's directory. */
export const JOB_FILES = {
  /** The wrapper script itself. */
  wrapper: 'run.sh',
  /** The command, verbatim. */
  command: 'command.sh',
  /** The wrapper's pid, written when it starts (for people and tools). */
  pid: 'pid',
  /** Standard output and standard error of the command, appended. */
  output: 'output.log',
  /** The command's exit status as decimal text; appears atomically when the command exits. */
  exit: 'exit',
  /** Where the exit status is written before the rename. */
  exitTmp: 'exit.tmp',
  /** Marker written before the service kills the job for its deadline. */
  timedOut: 'timedout',
  /** Marker written before the service kills the job on a cancel. */
  cancelled: 'cancelled',
} as const;

/**
 * Exit status recorded when the working directory cannot be entered, the same
 * code a shell uses for "found but cannot run".
 */
export const CWD_FAILED_EXIT_CODE = 126;

/**
 * The text of the wrapper, run as `/bin/sh run.sh <job dir> <cwd>`.
 *
 * `sh` reports a command killed by signal n as status 128+n, which is what
 * ends up in the exit file. The wrapper does not trap signals: when the
 * service kills the process group the wrapper dies with it and writes no exit
 * file, so the marker files decide the outcome.
 */
export function wrapperScript(): string {
  return `# Baton job wrapper: runs command.sh and records its exit status.
# Usage: /bin/sh run.sh <job dir> <working dir>
d=$1
echo $$ >"$d/${JOB_FILES.pid}.tmp" && mv -f "$d/${JOB_FILES.pid}.tmp" "$d/${JOB_FILES.pid}"
if cd "$2" 2>>"$d/${JOB_FILES.output}"; then
  sh "$d/${JOB_FILES.command}" </dev/null >>"$d/${JOB_FILES.output}" 2>&1
  code=$?
else
  code=${CWD_FAILED_EXIT_CODE}
fi
echo "$code" >"$d/${JOB_FILES.exitTmp}" && mv -f "$d/${JOB_FILES.exitTmp}" "$d/${JOB_FILES.exit}"
exit "$code"
`;
}
