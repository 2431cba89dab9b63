// The chat of one session: stored messages (each shown once, by id), the live
// turn or follow-up streaming in, tool events as cards, failure notices.

import { atBottom, clock, h, richText } from './dom.js';

/**
 * @typedef {{ id: string, sessionId: string, role: 'user'|'assistant'|'system', content: string,
 *   metadata: Record<string, any>, createdAt: string, queued?: boolean }} Message
 * @typedef {{ round?: number, tool?: string, command?: string, output?: string,
 *   exitCode?: number | null }} ToolEvent
 * @typedef {import('./feed.js').Frame} Frame
 */

/**
 * A tool event as a card: tool, command, exit code, output folded away.
 * @param {ToolEvent} event
 */
export function toolCard(event) {
  const exit = event.exitCode === null || event.exitCode === undefined ? null : event.exitCode;
  return h(
    'article',
    {
      class: 'tool-card',
      'data-testid': 'tool-card',
      'aria-label': `Tool ${event.tool ?? 'call'}`,
    },
    h(
      'header',
      {},
      h('span', { class: 'tool-name', text: event.tool ?? 'tool' }),
      event.round !== undefined
        ? h('span', { class: 'muted', text: ` · round ${event.round}` })
        : null,
      exit !== null
        ? h('span', { class: exit === 0 ? 'pill ok' : 'pill bad', text: `exit ${exit}` })
        : null,
    ),
    event.command ? h('pre', { class: 'tool-command' }, h('code', { text: event.command })) : null,
    event.output
      ? h(
          'details',
          {},
          h('summary', { text: 'output' }),
          h('pre', { class: 'tool-output', text: event.output }),
        )
      : null,
  );
}

/** @param {Record<string, any>} metadata @returns {string[]} */
export function jobIdsOf(metadata) {
  if (Array.isArray(metadata?.bgJobIds) && metadata.bgJobIds.length > 0)
    return metadata.bgJobIds.map(String);
  return typeof metadata?.bgJobId === 'string' ? [metadata.bgJobId] : [];
}

export class ChatView {
  /**
   * @param {HTMLElement} list the scroll box of messages
   * @param {{ onRetryJob: (jobId: string) => void }} actions
   */
  constructor(list, actions) {
    this.list = list;
    this.actions = actions;
    /** @type {Map<string, HTMLElement>} stored messages by id */
    this.shown = new Map();
    /** @type {Map<string, { el: HTMLElement, who: HTMLElement, text: HTMLElement, tools: HTMLElement, status: HTMLElement }>} */
    this.streams = new Map();
    /** @type {Set<string>} turns or jobs whose message is already stored: late deltas are dropped */
    this.done = new Set();
    // Follow new content while the reader is at the bottom; stay put once they scroll up to read.
    this.stick = true;
    list.addEventListener('scroll', () => {
      this.stick = atBottom(list);
    });
    new MutationObserver(() => {
      if (this.stick) list.scrollTop = list.scrollHeight;
    }).observe(list, { childList: true, subtree: true, characterData: true });
  }

  reset() {
    this.list.replaceChildren();
    this.shown.clear();
    this.streams.clear();
    this.done.clear();
    this.stick = true;
  }

  /**
   * Shows the stored history (in order), keeping any message the feed brought
   * that the history read did not include yet.
   * @param {Message[]} messages
   */
  setMessages(messages) {
    const extra = [...this.shown.entries()].filter(([id]) => !messages.some((m) => m.id === id));
    for (const el of this.shown.values()) el.remove();
    this.shown.clear();
    for (const message of messages) this.insert(message);
    for (const [id, el] of extra) {
      this.shown.set(id, el);
      this.place(el, el.dataset.queued === 'true');
    }
    for (const stream of this.streams.values()) this.place(stream.el, false);
    this.list.scrollTop = this.list.scrollHeight;
    this.stick = true;
  }

  /** @param {Message} message */
  addMessage(message) {
    const shown = this.shown.get(message.id);
    // A queued message enters the history when its turn starts: it moves there.
    if (shown && !(shown.dataset.queued === 'true' && !message.queued)) return;
    shown?.remove();
    this.shown.delete(message.id);
    this.insert(message);
    // Streams still running stay below the stored messages.
    for (const stream of this.streams.values()) this.place(stream.el, false);
  }

  /**
   * Appends a message or a stream; messages still waiting for their turn stay
   * last, below the history and the turns that run before theirs.
   * @param {HTMLElement} el
   * @param {boolean} queued
   */
  place(el, queued) {
    const firstQueued = queued ? null : this.list.querySelector('[data-queued="true"]');
    if (firstQueued && firstQueued !== el) this.list.insertBefore(el, firstQueued);
    else this.list.append(el);
  }

  /** @param {Message} message */
  insert(message) {
    // A stored message ends the stream that was writing it, and any replayed frame of that run.
    // (The user's message carries the turn id too, but the turn is only starting then.)
    const keys = [];
    if (message.role !== 'user' && message.metadata?.turnId)
      keys.push(`t:${message.metadata.turnId}`);
    if (message.role !== 'user')
      for (const jobId of jobIdsOf(message.metadata)) keys.push(`j:${jobId}`);
    for (const key of keys) {
      this.done.add(key);
      this.streams.get(key)?.el.remove();
      this.streams.delete(key);
    }
    const el = this.render(message);
    this.shown.set(message.id, el);
    this.place(el, message.queued === true);
  }

  /** @param {Message} message */
  render(message) {
    const meta = message.metadata ?? {};
    const jobs = jobIdsOf(meta);
    const base = {
      'data-testid': 'message',
      'data-message-id': message.id,
      'data-role': message.role,
      ...(message.queued ? { 'data-queued': 'true' } : {}),
    };
    if (message.role === 'system' && meta.kind === 'followUpFailed') {
      return h(
        'div',
        {
          ...base,
          'data-kind': 'notice',
          class: 'notice',
          role: 'note',
          'aria-label': 'Follow-up failed',
        },
        h('strong', { text: `Follow-up failed · job ${jobs.join(', ')}` }),
        h('p', {}, richText(message.content)),
        jobs[0]
          ? h('button', {
              type: 'button',
              class: 'small',
              text: 'Retry follow-up',
              'data-testid': 'notice-retry',
              onclick: () => this.actions.onRetryJob(String(jobs[0])),
            })
          : null,
        h('time', { datetime: message.createdAt, text: clock(message.createdAt) }),
      );
    }
    if (message.role === 'system' && meta.kind === 'turnFailed') {
      return h(
        'div',
        {
          ...base,
          'data-kind': 'notice',
          class: 'notice',
          role: 'note',
          'aria-label': 'Message not answered',
        },
        h('strong', { text: 'Not answered' }),
        h('p', {}, richText(message.content)),
        h('time', { datetime: message.createdAt, text: clock(message.createdAt) }),
      );
    }
    const continuation = message.role === 'assistant' && jobs.length > 0;
    const kind = message.role === 'user' ? 'user' : continuation ? 'continuation' : message.role;
    const label =
      message.role === 'user'
        ? 'You'
        : continuation
          ? 'Agent · continuation'
          : message.role === 'system'
            ? 'System'
            : 'Agent';
    return h(
      'article',
      { ...base, 'data-kind': kind, class: `msg ${kind}`, 'aria-label': `${label} message` },
      h(
        'header',
        {},
        h('span', { class: 'who', text: label }),
        message.queued
          ? h('span', {
              class: 'pill',
              'data-testid': 'queued-badge',
              title: 'waits for the agent to finish what it is doing',
              text: 'queued',
            })
          : null,
        continuation
          ? h('span', {
              class: 'pill cont',
              'data-testid': 'continuation-badge',
              text: `after job${jobs.length > 1 ? 's' : ''} ${jobs.join(', ')}`,
            })
          : null,
        h('time', { datetime: message.createdAt, text: clock(message.createdAt) }),
      ),
      h('div', { class: 'content' }, richText(message.content)),
      Array.isArray(meta.toolEvents) && meta.toolEvents.length > 0
        ? h(
            'div',
            { class: 'tools' },
            meta.toolEvents.map((/** @type {ToolEvent} */ t) => toolCard(t)),
          )
        : null,
    );
  }

  /**
   * The stream a frame belongs to: a live turn (turnId) or a follow-up (jobId).
   * @param {Frame} frame
   * @param {boolean} create
   */
  stream(frame, create) {
    const key = frame.turnId ? `t:${frame.turnId}` : frame.jobId ? `j:${frame.jobId}` : null;
    if (!key || this.done.has(key)) return null;
    let stream = this.streams.get(key);
    if (!stream && create) {
      const label = frame.turnId
        ? 'Agent · writing'
        : `Agent · continuing after job ${frame.jobId}`;
      const who = h('span', { class: 'who', text: label });
      const status = h('span', { class: 'muted', text: '' });
      const text = h('div', { class: 'content' });
      const tools = h('div', { class: 'tools' });
      const el = h(
        'article',
        {
          class: `msg live ${frame.turnId ? '' : 'continuation'}`,
          'data-testid': 'live-turn',
          'data-turn-id': frame.turnId ?? null,
          'data-job-id': frame.turnId ? null : (frame.jobId ?? null),
          'aria-label': 'Reply being written',
          'aria-busy': 'true',
        },
        h('header', {}, who, status),
        text,
        tools,
      );
      stream = { el, who, text, tools, status };
      this.streams.set(key, stream);
      this.place(el, false);
    }
    return stream ?? null;
  }

  /** @param {Frame} frame */
  onFrame(frame) {
    switch (frame.type) {
      case 'turn.started':
        this.stream(frame, true);
        break;
      case 'turn.delta': {
        const stream = this.stream(frame, true);
        if (!stream) return;
        stream.text.append(String(frame.data?.delta ?? ''));
        break;
      }
      case 'turn.step': {
        const stream = this.stream(frame, true);
        if (stream) stream.status.textContent = ` · round ${frame.data?.round ?? '?'}`;
        break;
      }
      case 'turn.tool': {
        const stream = this.stream(frame, true);
        if (stream) stream.tools.append(toolCard(frame.data ?? {}));
        break;
      }
      case 'turn.finished':
        if (frame.turnId)
          this.endStream(`t:${frame.turnId}`, frame.data?.ok === false ? frame.data?.error : null);
        break;
    }
  }

  /**
   * A follow-up's stream ends when its job leaves `continuing` without a message.
   * @param {string} jobId @param {string} state
   */
  onJobState(jobId, state) {
    if (state !== 'continuing')
      this.endStream(
        `j:${jobId}`,
        state === 'retrying' ? 'the attempt failed; it will be retried' : null,
      );
  }

  /** @param {string} key @param {string | null | undefined} error */
  endStream(key, error) {
    const stream = this.streams.get(key);
    this.streams.delete(key);
    if (!stream) return;
    if (!error) {
      stream.el.remove();
      return;
    }
    // Not a stored message: says what happened to this run, until the page reloads.
    stream.el.setAttribute('data-testid', 'turn-error');
    stream.el.setAttribute('aria-busy', 'false');
    stream.el.classList.add('failed');
    stream.who.textContent = key.startsWith('t:')
      ? 'Agent · turn stopped'
      : 'Agent · follow-up attempt stopped';
    stream.status.textContent = '';
    stream.el.append(h('p', { class: 'error', text: error }));
  }
}
