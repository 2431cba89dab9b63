import pg from 'pg';
import type { ClientBase } from 'pg';

/**
 * One step of the PostgreSQL schema. Steps run in `version` order, each in its
 * own transaction together with its row in `schema_migrations` (PostgreSQL DDL
 * is transactional), so a crash between steps leaves the schema at a known
 * version.
 *
 * A released step is never edited: a later schema change is a new step appended
 * to {@link POSTGRES_MIGRATIONS}.
 */
export interface PostgresMigration {
  /** 1 for the first step, then one more per step. */
  version: number;
  /** Recorded in `schema_migrations` for whoever inspects the database. */
  name: string;
  /** The step's SQL; `schema` is the quoted schema name to qualify every object with. */
  sql(schema: string): string;
}

/**
 * The same tables as the SQLite store. Text keys use the "C" collation so that
 * `ORDER BY created_at, id` sorts bytewise, as SQLite does, whatever the
 * database's locale. JSON columns are `json`, not `jsonb`: `json` keeps the
 * exact text written (key order included) and accepts `\u0000` escapes, so a
 * value reads back exactly as SQLite returns it.
 */
function initialSchema(s: string): string {
  return `
  CREATE TABLE ${s}.sessions (
    id text COLLATE "C" PRIMARY KEY,
    owner text COLLATE "C" NOT NULL,
    title text NOT NULL,
    system_prompt text,
    created_at text COLLATE "C" NOT NULL,
    deleted_at text
  );
  CREATE INDEX sessions_by_owner ON ${s}.sessions (owner, created_at, id) WHERE deleted_at IS NULL;

  -- ordinal gives the exact insertion order. An identity column draws from a
  -- sequence, so it can have gaps; only its order matters.
  CREATE TABLE ${s}.messages (
    ordinal bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    session_id text COLLATE "C" NOT NULL REFERENCES ${s}.sessions (id),
    owner text COLLATE "C" NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    metadata json NOT NULL,
    created_at text NOT NULL
  );
  CREATE INDEX messages_by_session ON ${s}.messages (session_id, ordinal);

  -- The primary key on job_id is what makes a second follow-up for a job
  -- impossible, whichever process writes it.
  CREATE TABLE ${s}.follow_ups (
    job_id text COLLATE "C" PRIMARY KEY,
    message_id text COLLATE "C" NOT NULL REFERENCES ${s}.messages (id),
    position integer NOT NULL
  );
  CREATE INDEX follow_ups_by_message ON ${s}.follow_ups (message_id, position);

  CREATE TABLE ${s}.jobs (
    id text COLLATE "C" PRIMARY KEY,
    session_id text COLLATE "C" NOT NULL REFERENCES ${s}.sessions (id),
    owner text COLLATE "C" NOT NULL,
    command text,
    cwd text,
    timeout_s double precision,
    external boolean NOT NULL,
    name text,
    state text COLLATE "C" NOT NULL,
    outcome text,
    exit_code integer,
    attempts integer NOT NULL,
    output text NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    finished_at text,
    followed_up_at text,
    history json NOT NULL,
    why text NOT NULL,
    snapshot json NOT NULL,
    process json,
    version integer NOT NULL
  );
  CREATE INDEX jobs_by_session ON ${s}.jobs (session_id, state, created_at, id);
  CREATE INDEX jobs_by_owner ON ${s}.jobs (owner, state, created_at, id);
  CREATE INDEX jobs_by_state ON ${s}.jobs (state, created_at, id);

  CREATE TABLE ${s}.events (
    owner text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    at text NOT NULL,
    type text NOT NULL,
    session_id text COLLATE "C",
    job_id text,
    turn_id text,
    data json NOT NULL,
    PRIMARY KEY (owner, seq)
  );
  CREATE INDEX events_by_session ON ${s}.events (owner, session_id, seq);

  -- A counter row per owner, bumped inside the commit: a rolled-back commit
  -- takes its increments with it, so seq has no gaps. A SEQUENCE would not do:
  -- nextval() is never rolled back.
  CREATE TABLE ${s}.owner_seq (
    owner text COLLATE "C" PRIMARY KEY,
    last_seq bigint NOT NULL
  );
`;
}

/** Every schema step, oldest first. Append only. */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  { version: 1, name: 'initial schema', sql: initialSchema },
  { version: 2, name: 'session owners and commands', sql: sessionOwners },
  {
    version: 3,
    name: 'job labels',
    sql: (s) => `ALTER TABLE ${s}.jobs ADD COLUMN labels json NOT NULL DEFAULT '{}'`,
  },
  {
    version: 4,
    name: 'session owner since',
    // When the owner claimed the session: an owner that does not answer is named with it.
    sql: (s) => `ALTER TABLE ${s}.sessions ADD COLUMN owner_since timestamptz`,
  },
  {
    version: 5,
    // A user message waiting for its turn is stored at once but enters the
    // history (takes its ordinal) only when its turn takes the lock.
    name: 'queued messages',
    sql: (s) => `ALTER TABLE ${s}.messages ADD COLUMN queued boolean NOT NULL DEFAULT false`,
  },
  {
    version: 6,
    // The steps of agent turns: a retried turn resumes from them.
    name: 'turn journal',
    sql: (s) => `CREATE TABLE ${s}.turn_journal (
        turn_key text COLLATE "C" NOT NULL,
        step integer NOT NULL,
        session_id text COLLATE "C" NOT NULL,
        entry json NOT NULL,
        PRIMARY KEY (turn_key, step)
      )`,
  },
  {
    version: 7,
    // A user message's turn until it has an answer or a notice: the owner
    // that takes the session runs again what it finds here.
    name: 'open turns',
    sql: (s) => `CREATE TABLE ${s}.open_turns (
        turn_id text COLLATE "C" PRIMARY KEY,
        session_id text COLLATE "C" NOT NULL,
        owner text NOT NULL,
        message_id text COLLATE "C" NOT NULL
      );
      CREATE INDEX open_turns_by_session ON ${s}.open_turns (session_id)`,
  },
];

/**
 * Several processes on one database: a session's owner and fencing epoch
 * (raised by every claim, checked by every write of the session), and the
 * commands one process leaves for the owner of a session.
 */
function sessionOwners(s: string): string {
  return `
  ALTER TABLE ${s}.sessions
    ADD COLUMN owner_epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN owner_host text;

  CREATE TABLE ${s}.commands (
    id bigserial PRIMARY KEY,
    session_id text COLLATE "C" NOT NULL,
    command json NOT NULL,
    result json,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz
  );
  CREATE INDEX commands_pending ON ${s}.commands (session_id, id) WHERE done_at IS NULL;
`;
}

/**
 * First key of the advisory lock that serialises migrations ("Batn"); the
 * second key is the schema's hash, so migrating one schema never waits for
 * another.
 */
const MIGRATION_LOCK_CLASS = 0x4261746e;

/** The schema name quoted as an SQL identifier. */
export function quoteSchema(schema: string): string {
  // PostgreSQL truncates longer names silently: two long names could collide.
  if (schema.length === 0 || Buffer.byteLength(schema) > 63) {
    throw new Error(`schema name must be 1 to 63 bytes long, got ${JSON.stringify(schema)}`);
  }
  return pg.escapeIdentifier(schema);
}

/**
 * Brings `schema` (created when missing) up to the newest step in `migrations`
 * and returns the versions it applied (empty when the schema was current).
 *
 * Holds a session-level advisory lock for the whole run, so that processes
 * starting together apply each step once: the second waits, then finds the
 * steps recorded. The lock goes with the connection if the process dies.
 *
 * Throws when the schema was written by a newer Baton whose steps this build
 * does not know, rather than running old code against a schema it cannot read.
 */
export async function migratePostgres(
  client: ClientBase,
  schema: string,
  migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS,
): Promise<number[]> {
  const s = quoteSchema(schema);
  const lockArgs = [MIGRATION_LOCK_CLASS, schema];
  await client.query('SELECT pg_advisory_lock($1, hashtext($2))', lockArgs);
  let ran: number[];
  try {
    ran = await applySteps(client, schema, s, migrations);
  } catch (err) {
    // If the connection broke, unlocking fails too; the caller then destroys
    // the connection, and the lock ends with it. The first error is the one
    // worth reporting.
    await client
      .query('SELECT pg_advisory_unlock($1, hashtext($2))', lockArgs)
      .catch(() => undefined);
    throw err;
  }
  await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', lockArgs);
  return ran;
}

async function applySteps(
  client: ClientBase,
  schema: string,
  s: string,
  migrations: readonly PostgresMigration[],
): Promise<number[]> {
  // Existence is checked first so that a current schema needs no DDL at all:
  // a store can then open on a read-only connection (a hot standby).
  const found = await client.query<{ namespace: string | null; table: string | null }>(
    `SELECT to_regnamespace($1)::text AS namespace, to_regclass($2)::text AS table`,
    [s, `${s}.schema_migrations`],
  );
  if (found.rows[0]?.namespace == null) await client.query(`CREATE SCHEMA ${s}`);
  if (found.rows[0]?.table == null) {
    await client.query(`CREATE TABLE ${s}.schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  }

  const done = await client.query<{ version: number }>(
    `SELECT version FROM ${s}.schema_migrations`,
  );
  const applied = new Set(done.rows.map((r) => r.version));
  const newestKnown = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const newestApplied = Math.max(0, ...applied);
  if (newestApplied > newestKnown) {
    throw new Error(
      `database schema ${schema} is at version ${newestApplied}, newer than this build knows (${newestKnown})`,
    );
  }

  const ran: number[] = [];
  for (const step of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(step.version)) continue;
    await client.query('BEGIN');
    try {
      await client.query(step.sql(s));
      await client.query(`INSERT INTO ${s}.schema_migrations (version, name) VALUES ($1, $2)`, [
        step.version,
        step.name,
      ]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    ran.push(step.version);
  }
  return ran;
}
