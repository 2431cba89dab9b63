import type Database from 'better-sqlite3';

/**
 * One step of the SQLite schema. Steps run in `version` order, each in its own
 * transaction together with its row in `schema_migrations`, so a crash between
 * steps leaves the database at a known version.
 *
 * A released step is never edited: a later schema change is a new step appended
 * to {@link SQLITE_MIGRATIONS}.
 */
export interface SqliteMigration {
  /** 1 for the first step, then one more per step. */
  version: number;
  /** Recorded in `schema_migrations` for whoever inspects the file. */
  name: string;
  up(db: Database.Database): void;
}

const INITIAL_SCHEMA = `
  CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    system_prompt TEXT,
    created_at TEXT NOT NULL,
    deleted_at TEXT
  ) STRICT;
  CREATE INDEX sessions_by_owner ON sessions (owner, created_at, id) WHERE deleted_at IS NULL;

  -- ordinal gives the exact insertion order; AUTOINCREMENT keeps it increasing
  -- even if rows are ever purged, which a bare rowid would not.
  CREATE TABLE messages (
    ordinal INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    owner TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL
  ) STRICT;
  CREATE INDEX messages_by_session ON messages (session_id, ordinal);

  -- The primary key on job_id is what makes a second follow-up for a job
  -- impossible, whichever process writes it.
  CREATE TABLE follow_ups (
    job_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages (id),
    position INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX follow_ups_by_message ON follow_ups (message_id, position);

  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    owner TEXT NOT NULL,
    command TEXT,
    cwd TEXT,
    timeout_s REAL,
    external INTEGER NOT NULL,
    name TEXT,
    state TEXT NOT NULL,
    outcome TEXT,
    exit_code INTEGER,
    attempts INTEGER NOT NULL,
    output TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    followed_up_at TEXT,
    history TEXT NOT NULL,
    why TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    process TEXT,
    version INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX jobs_by_session ON jobs (session_id, state, created_at, id);
  CREATE INDEX jobs_by_owner ON jobs (owner, state, created_at, id);
  CREATE INDEX jobs_by_state ON jobs (state, created_at, id);

  CREATE TABLE events (
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    session_id TEXT,
    job_id TEXT,
    turn_id TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (owner, seq)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX events_by_session ON events (owner, session_id, seq);

  -- A counter row per owner, bumped inside the commit: a rolled-back commit
  -- takes its increments with it, so seq has no gaps.
  CREATE TABLE owner_seq (
    owner TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
`;

/** Every schema step, oldest first. Append only. */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: 'initial schema',
    up(db) {
      db.exec(INITIAL_SCHEMA);
    },
  },
  {
    version: 2,
    // The same fencing column as PostgreSQL, so one contract holds for both;
    // with the embedded store a single process owns every session at epoch 0.
    name: 'session owner epoch',
    up(db) {
      db.exec('ALTER TABLE sessions ADD COLUMN owner_epoch INTEGER NOT NULL DEFAULT 0');
    },
  },
  {
    version: 3,
    // A job changes state four or five times on its way to a follow-up; with
    // the state in all three indexes each change moved three index entries.
    // Now only jobs_by_state holds it: listing a session's or an owner's jobs
    // by state filters their (few) rows instead.
    name: 'job indexes without state',
    up(db) {
      db.exec(`
        DROP INDEX jobs_by_session;
        DROP INDEX jobs_by_owner;
        CREATE INDEX jobs_by_session ON jobs (session_id, created_at, id);
        CREATE INDEX jobs_by_owner ON jobs (owner, created_at, id);
      `);
    },
  },
  {
    version: 4,
    name: 'job labels',
    up(db) {
      db.exec(`ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'`);
    },
  },
  {
    version: 5,
    // A user message waiting for its turn is stored at once but enters the
    // history (takes its ordinal) only when its turn takes the lock.
    name: 'queued messages',
    up(db) {
      db.exec('ALTER TABLE messages ADD COLUMN queued INTEGER NOT NULL DEFAULT 0');
    },
  },
  {
    version: 6,
    // The steps of agent turns: a retried turn resumes from them.
    name: 'turn journal',
    up(db) {
      db.exec(`
        CREATE TABLE turn_journal (
          turn_key TEXT NOT NULL,
          step INTEGER NOT NULL,
          session_id TEXT NOT NULL,
          entry TEXT NOT NULL,
          PRIMARY KEY (turn_key, step)
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
  {
    version: 7,
    // A user message's turn until it has an answer or a notice: a restart
    // runs again what it finds here.
    name: 'open turns',
    up(db) {
      db.exec(`
        CREATE TABLE open_turns (
          turn_id TEXT PRIMARY KEY,
          session_id TEXT NOT NULL,
          owner TEXT NOT NULL,
          message_id TEXT NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX open_turns_by_session ON open_turns (session_id);
      `);
    },
  },
];

/**
 * Brings the database up to the newest step in `migrations` and returns the
 * versions it applied (empty when the schema was current).
 *
 * Throws when the file was written by a newer Baton whose steps this build does
 * not know, rather than running old code against a schema it cannot read.
 */
export function migrateSqlite(
  db: Database.Database,
  migrations: readonly SqliteMigration[] = SQLITE_MIGRATIONS,
): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const newestKnown = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const newestApplied = db
    .prepare<[], number | null>('SELECT max(version) FROM schema_migrations')
    .pluck()
    .get();
  if (newestApplied != null && newestApplied > newestKnown) {
    throw new Error(
      `database schema is at version ${newestApplied}, newer than this build knows (${newestKnown})`,
    );
  }

  const isApplied = db.prepare<[number], number>(
    'SELECT 1 FROM schema_migrations WHERE version = ?',
  );
  const record = db.prepare<[number, string, string]>(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
  );
  const apply = db.transaction((step: SqliteMigration): boolean => {
    // Checked again inside the write lock: another process may have applied
    // the step between our read above and this transaction.
    if (isApplied.get(step.version) !== undefined) return false;
    step.up(db);
    record.run(step.version, step.name, new Date().toISOString());
    return true;
  });

  const applied: number[] = [];
  for (const step of [...migrations].sort((a, b) => a.version - b.version)) {
    if (apply.immediate(step)) applied.push(step.version);
  }
  return applied;
}
