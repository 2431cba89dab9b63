// The job machine (SPEC §2) drawn as an inline SVG: the main path in a row,
// retries and the other final states below. The current state is filled, the
// states the job went through are tinted, and the transitions it took are drawn
// in colour, so the picture moves as `job.state` events arrive.

import { s } from './dom.js';

export const MAIN_PATH = [
  'running',
  'completed',
  'awaitingIdleSession',
  'continuing',
  'followedUp',
];
export const FINAL_STATES = new Set(['followedUp', 'failed', 'cancelled', 'skipped']);

const W = 100;
const H = 40;
const col = (/** @type {number} */ i) => 8 + i * 112;
const TOP = 8;
const BOTTOM = 84;

/** @type {Record<string, { x: number, y: number, lines: string[], tone: string }>} */
const NODES = {
  running: { x: col(0), y: TOP, lines: ['running'], tone: 'active' },
  completed: { x: col(1), y: TOP, lines: ['completed'], tone: 'active' },
  awaitingIdleSession: { x: col(2), y: TOP, lines: ['awaiting', 'IdleSession'], tone: 'active' },
  continuing: { x: col(3), y: TOP, lines: ['continuing'], tone: 'active' },
  followedUp: { x: col(4), y: TOP, lines: ['followedUp'], tone: 'good' },
  retrying: { x: col(2.5), y: BOTTOM, lines: ['retrying'], tone: 'warn' },
  failed: { x: col(4), y: BOTTOM, lines: ['failed'], tone: 'bad' },
  cancelled: { x: col(0), y: BOTTOM, lines: ['cancelled'], tone: 'neutral' },
  skipped: { x: col(1), y: BOTTOM, lines: ['skipped'], tone: 'neutral' },
};

/** Transitions drawn: [from, to, path]. */
const EDGES = /** @type {[string, string, string][]} */ ([
  ['running', 'completed', `M${col(0) + W} 28 H${col(1) - 2}`],
  ['completed', 'awaitingIdleSession', `M${col(1) + W} 28 H${col(2) - 2}`],
  ['awaitingIdleSession', 'continuing', `M${col(2) + W} 28 H${col(3) - 2}`],
  ['continuing', 'followedUp', `M${col(3) + W} 28 H${col(4) - 2}`],
  ['continuing', 'retrying', `M${col(3) + 60} ${TOP + H} L${col(3) + 26} ${BOTTOM - 2}`],
  ['retrying', 'awaitingIdleSession', `M${col(2.5) + 18} ${BOTTOM} L${col(2) + 52} ${TOP + H + 2}`],
  ['continuing', 'failed', `M${col(3) + 86} ${TOP + H} L${col(4) + 20} ${BOTTOM - 2}`],
  // POST /v1/jobs/:id/retry re-drives a failed job: drawn around the bottom, dashed until taken.
  [
    'failed',
    'awaitingIdleSession',
    `M${col(4) + 50} ${BOTTOM + H} V${BOTTOM + H + 12} H${col(2) + 30} V${TOP + H + 2}`,
  ],
]);

/**
 * Builds the picture once; {@link updateLifecycle} moves it.
 * @returns {SVGElement}
 */
export function lifecycleSvg() {
  const edges = EDGES.map(([from, to, d]) =>
    s('path', {
      d,
      class: from === 'failed' ? 'edge manual' : 'edge',
      'data-from': from,
      'data-to': to,
      'marker-end': 'url(#arrow)',
    }),
  );
  const nodes = Object.entries(NODES).map(([state, node]) =>
    s(
      'g',
      { class: `node tone-${node.tone}`, 'data-testid': 'job-node', 'data-node': state },
      s('title', { text: state }),
      s('rect', { x: node.x, y: node.y, width: W, height: H, rx: 8 }),
      ...node.lines.map((line, i) =>
        s('text', {
          x: node.x + W / 2,
          y: node.y + H / 2 + 4 + (i - (node.lines.length - 1) / 2) * 13,
          'text-anchor': 'middle',
          text: line,
        }),
      ),
    ),
  );
  return s(
    'svg',
    { class: 'lifecycle', viewBox: '0 0 564 156', role: 'img', 'data-testid': 'job-lifecycle' },
    s('title', { text: 'job lifecycle' }),
    ...edges,
    ...nodes,
    s('text', { x: col(0), y: 140, class: 'caption', text: 'cancelled · skipped: from any' }),
    s('text', { x: col(0), y: 153, class: 'caption', text: 'unfinished state' }),
    s('text', { x: col(3) - 4, y: BOTTOM + H + 24, class: 'caption', text: 'retry (button)' }),
  );
}

/**
 * Marks the current state, the states passed through and the transitions taken.
 * @param {SVGElement} svg
 * @param {string} state
 * @param {{ state: string }[]} history
 */
export function updateLifecycle(svg, state, history) {
  const path = history.map((entry) => entry.state);
  if (path[path.length - 1] !== state) path.push(state);
  const visited = new Set(path);
  const taken = new Set();
  for (let i = 1; i < path.length; i += 1) taken.add(`${path[i - 1]}>${path[i]}`);
  for (const node of svg.querySelectorAll('g.node')) {
    const name = node.getAttribute('data-node') ?? '';
    node.classList.toggle('current', name === state);
    node.classList.toggle('visited', visited.has(name) && name !== state);
    node.setAttribute('data-current', String(name === state));
    node.setAttribute('data-visited', String(visited.has(name)));
  }
  for (const edge of svg.querySelectorAll('path.edge')) {
    const on = taken.has(`${edge.getAttribute('data-from')}>${edge.getAttribute('data-to')}`);
    edge.classList.toggle('taken', on);
    edge.setAttribute('marker-end', on ? 'url(#arrow-taken)' : 'url(#arrow)');
  }
  svg.setAttribute('aria-label', `Lifecycle: went ${path.join(' → ')}; now ${state}`);
}
