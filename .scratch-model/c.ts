import { jobMachine } from '../src/machines/job.machine.js';
import { sessionMachine } from '../src/machines/session.machine.js';
for (const m of [jobMachine, sessionMachine]) {
  const j = JSON.stringify(m.toJSON());
  console.log(j.length, j.slice(0, 1500));
  console.log(Object.keys(m.config), JSON.stringify(m.config).slice(0, 300));
}
