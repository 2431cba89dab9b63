import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { AgentError } from './agent.js';
import { clip, describe, retryAfterFromHeaders } from './sse.js';

/** Maps whatever a run threw to the AgentError the job machine understands. */
export function toAgentError(error: unknown, signal: AbortSignal): AgentError {
  if (signal.aborted || error instanceof APIUserAbortError) {
    return error instanceof AgentError && error.code === 'agent_aborted'
      ? error
      : new AgentError('agent_aborted', 'the agent run was aborted', null, { cause: error });
  }
  if (error instanceof AgentError) return error;
  if (error instanceof APIConnectionTimeoutError) {
    return new AgentError('agent_stream', `the model server timed out: ${describe(error)}`, null, {
      cause: error,
    });
  }
  if (error instanceof APIConnectionError) {
    return new AgentError(
      'agent_stream',
      `connection to the model server failed: ${describe(error)}`,
      null,
      {
        cause: error,
      },
    );
  }
  if (error instanceof APIError) {
    if (error.status === 429) {
      return new AgentError(
        'agent_rate_limited',
        `the model server is rate limiting (HTTP 429): ${clip(error.message)}`,
        retryAfterFromHeaders(error.headers),
        { cause: error },
      );
    }
    if (typeof error.status === 'number') {
      return new AgentError(
        'agent_http',
        `the model server answered HTTP ${error.status}: ${clip(error.message)}`,
        null,
        {
          cause: error,
        },
      );
    }
    // No status: the SDK found an `error` object inside the stream.
    return new AgentError(
      'agent_error_frame',
      `the model stream carried an error: ${clip(error.message)}`,
      null,
      {
        cause: error,
      },
    );
  }
  if (error instanceof SyntaxError) {
    return new AgentError(
      'agent_stream',
      `malformed data in the model stream: ${clip(error.message)}`,
      null,
      {
        cause: error,
      },
    );
  }
  return new AgentError('agent_stream', `the model stream failed: ${describe(error)}`, null, {
    cause: error,
  });
}
