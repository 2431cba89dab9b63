// The session list and how a session's lock is put in words (SPEC §3:
// idle, or busy with its holder and the queue).

import { clock, h } from './dom.js';

/**
 * @typedef {{ lock: 'idle' | 'busy', holder: { kind: string, id: string, since: string } | null,
 *   queue: { kind: string, id: string }[] }} Lock
 * @typedef {{ id: string, title: string, createdAt: string, lock?: Lock }} Session
 */

/**
 * The lock in words: short for the list, long (holder, since, queue) for the session header.
 * @param {Lock | undefined} lock
 * @param {boolean} [long]
 */
export function lockText(lock, long = false) {
  if (!lock) return '…';
  if (lock.lock !== 'busy' || !lock.holder) return 'idle';
  const holder = lock.holder;
  const queue = lock.queue ?? [];
  if (!long) {
    const kind = holder.kind === 'live' ? 'live turn' : 'follow-up';
    return `busy · ${kind}${queue.length ? ` · ${queue.length} queued` : ''}`;
  }
  const who = holder.kind === 'live' ? `live turn ${holder.id}` : `follow-up of ${holder.id}`;
  const waiting = queue.length
    ? `; queue: ${queue.map((w) => `${w.kind} ${w.id}`).join(', ')}`
    : '; queue empty';
  return `busy: ${who} holds it since ${clock(holder.since)}${waiting}`;
}

/**
 * Renders the list of sessions, newest first, each with its lock and a delete button.
 * @param {HTMLElement} list
 * @param {Iterable<Session>} sessions
 * @param {string | null} currentId
 * @param {{ select: (id: string) => void, remove: (session: Session) => void }} actions
 */
export function renderSessionList(list, sessions, currentId, actions) {
  const items = [...sessions]
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1))
    .map((session) => {
      const lock = session.lock?.lock ?? 'unknown';
      const current = session.id === currentId;
      const title = session.title || 'Untitled';
      return h(
        'li',
        {
          'data-testid': 'session-item',
          'data-session-id': session.id,
          'data-lock': lock,
          class: current ? 'current' : '',
        },
        h(
          'button',
          {
            type: 'button',
            class: 'select',
            'aria-current': current ? 'true' : null,
            onclick: () => actions.select(session.id),
          },
          h('span', { class: 'title', text: title }),
          h('span', {
            class: `lock lock-${lock}`,
            'data-testid': 'session-item-lock',
            title: lockText(session.lock, true),
            text: lockText(session.lock),
          }),
        ),
        h('button', {
          type: 'button',
          class: 'delete',
          'data-testid': 'delete-session',
          'aria-label': `Delete session ${session.title || session.id}`,
          text: '×',
          onclick: () => actions.remove(session),
        }),
      );
    });
  list.replaceChildren(
    ...(items.length ? items : [h('li', { class: 'muted', text: 'No sessions yet.' })]),
  );
}
