/** Runs every benchmark in bench/, one after another (cluster needs PostgreSQL on 127.0.0.1, sandbox bubblewrap). */
await import('./followups.js');
await import('./sandbox.js');
await import('./cluster.js');
