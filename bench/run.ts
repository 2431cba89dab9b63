/** Runs every benchmark in bench/, one after another. */
await import('./followups.js');
