/**
 * The LISTEN/NOTIFY channels of one PostgreSQL schema. Channels belong to
 * the database, not to a schema: with fixed names, processes on two schemas
 * of one database heard each other's notices (a seq of another schema's
 * owner moved a feed tail; a command id of another schema woke a forwarded
 * call that then read the wrong row). Each name therefore carries the schema,
 * as a digest: a channel name is an identifier of at most 63 bytes, and a
 * schema name may itself be 63 bytes of any character.
 */

import { createHash } from 'node:crypto';

export interface NotifyChannels {
  /** A forwarded command was stored for a session (payload: the session id). */
  commands: string;
  /** A forwarded command has its result (payload: the command id). */
  commandDone: string;
  /** Events were stored (payload: `<last seq> <owner>`). */
  events: string;
  /** A live-only frame for the feeds of every process. */
  ephemeral: string;
  /** Sessions given up by a process that stops (payload: their ids). */
  handover: string;
}

/** The channels of `schema` (its name unquoted, as configured). */
export function notifyChannels(schema: string): NotifyChannels {
  const tag = createHash('sha256').update(schema).digest('hex').slice(0, 16);
  return {
    commands: `baton_commands_${tag}`,
    commandDone: `baton_command_done_${tag}`,
    events: `baton_events_${tag}`,
    ephemeral: `baton_ephemeral_${tag}`,
    handover: `baton_handover_${tag}`,
  };
}
