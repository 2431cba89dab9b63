// The jobs of one session: each a card with its lifecycle picture, why it
// waits, outcome, exit code, attempts, the output tail (live while the job
// runs, from `job.output` frames) and cancel/retry.

import { clock, h } from './dom.js';
import { FINAL_STATES, lifecycleSvg, updateLifecycle } from './lifecycle.js';

/**
 * @typedef {{ id: string, sessionId: string, command: string | null, name?: string | null,
 *   labels?: Record<string, string>, external?: boolean, state: string, outcome: string | null, exitCode: number | null,
 *   attempts: number, output: string, createdAt: string, finishedAt: string | null,
 *   followedUpAt: string | null, history: { state: string, at: string }[], why: string }} Job
 * @typedef {{ el: HTMLElement, svg: SVGElement, fields: Record<string, HTMLElement>,
 *   cancel: HTMLButtonElement, retry: HTMLButtonElement, error: HTMLElement }} Card
 * @typedef {{ output: string, since: number, next: number, size: number }} OutputPart
 * @typedef {{ text: string, next: number, reading: boolean }} LiveOutput
 */

/** How much of a running job's output a card keeps. */
const LIVE_CHARS = 16 * 1024;

export class JobsView {
  /**
   * @param {HTMLElement} list
   * @param {{ cancel: (jobId: string) => Promise<Job | null>, retry: (jobId: string) => Promise<Job | null>,
   *   output: (jobId: string, since: number) => Promise<OutputPart> }} actions
   *   cancel and retry resolve to the job as the API answered, or null when the feed has moved it since
   */
  constructor(list, actions) {
    this.list = list;
    this.actions = actions;
    /** @type {Map<string, LiveOutput>} what a running job has printed, as far as the page knows */
    this.live = new Map();
    /** @type {Map<string, Job>} */
    this.jobs = new Map();
    /** @type {Map<string, Card>} */
    this.cards = new Map();
    this.empty = h('p', {
      class: 'muted empty',
      'data-testid': 'jobs-empty',
      text: 'No jobs in this session yet. Send “bg <command>” to have the agent start one.',
    });
    this.reset();
  }

  reset() {
    this.jobs.clear();
    this.cards.clear();
    this.live.clear();
    this.list.replaceChildren(this.empty);
  }

  /**
   * Shows the jobs read over HTTP; a job the feed moved since that read started keeps what the feed said.
   * @param {Job[]} jobs
   * @param {(jobId: string) => boolean} movedSince
   */
  setJobs(jobs, movedSince) {
    for (const job of jobs) if (!this.jobs.has(job.id) || !movedSince(job.id)) this.upsert(job);
  }

  /** @param {Job} job */
  upsert(job) {
    const live = this.live.get(job.id);
    // The stored output appears when the job ends; until then the live tail stands.
    if (live && !job.output) job = { ...job, output: live.text };
    if (FINAL_STATES.has(job.state)) this.live.delete(job.id);
    this.jobs.set(job.id, job);
    let card = this.cards.get(job.id);
    if (!card) {
      card = this.build(job);
      this.cards.set(job.id, card);
      this.empty.remove();
      // Newest first: before the first card (in page order) that is older.
      const older = [...this.list.children].find((el) => {
        const id = el.getAttribute('data-job-id');
        return id !== null && id !== job.id && (this.jobs.get(id)?.createdAt ?? '') < job.createdAt;
      });
      this.list.insertBefore(card.el, older ?? null);
    }
    this.render(card, job);
  }

  /**
   * A `job.state` frame: moves the card at once (the rest of the job is read again by the caller).
   * @param {string} jobId
   * @param {string} sessionId
   * @param {{ state: string, outcome?: string | null, attempts?: number, why?: string }} data
   * @param {string} at
   */
  applyState(jobId, sessionId, data, at) {
    const known = this.jobs.get(jobId);
    const history = [...(known?.history ?? [])];
    if (history[history.length - 1]?.state !== data.state) history.push({ state: data.state, at });
    this.upsert({
      id: jobId,
      sessionId,
      command: null,
      output: '',
      exitCode: null,
      createdAt: at,
      finishedAt: null,
      followedUpAt: null,
      ...known,
      state: data.state,
      outcome: data.outcome ?? known?.outcome ?? null,
      attempts: data.attempts ?? known?.attempts ?? 0,
      why: data.why ?? known?.why ?? '',
      history,
    });
  }

  /**
   * A `job.created` frame: the card appears with its command before the job is read.
   * @param {string} jobId
   * @param {string} sessionId
   * @param {{ command?: string | null, name?: string | null, labels?: Record<string, string>, external?: boolean }} data
   * @param {string} at
   */
  created(jobId, sessionId, data, at) {
    if (this.jobs.has(jobId)) return;
    this.upsert({
      id: jobId,
      sessionId,
      command: data.command ?? null,
      name: data.name ?? null,
      labels: data.labels ?? {},
      external: data.external ?? false,
      state: 'running',
      outcome: null,
      exitCode: null,
      attempts: 0,
      output: '',
      createdAt: at,
      finishedAt: null,
      followedUpAt: null,
      history: [],
      why: '',
    });
  }

  /**
   * A `job.output` frame: appends to the card of a running job. A frame that
   * starts past what the page has (it joined late, or frames carry only the
   * newest part) is preceded by the missing part, read over HTTP.
   * @param {string} jobId
   * @param {OutputPart} part
   */
  liveOutput(jobId, part) {
    const job = this.jobs.get(jobId);
    if (!job || FINAL_STATES.has(job.state)) return;
    const live = this.live.get(jobId) ?? { text: '', next: 0, reading: false };
    this.live.set(jobId, live);
    if (live.reading || part.next <= live.next) return;
    if (part.since > live.next) {
      void this.readGap(jobId, live, part.next);
      return;
    }
    this.appendLive(jobId, live, part);
  }

  /**
   * Reads the output from what the page has up to `until` (the newest part at most).
   * @param {string} jobId @param {LiveOutput} live @param {number} until
   */
  async readGap(jobId, live, until) {
    live.reading = true;
    try {
      let since = Math.max(live.next, until - LIVE_CHARS);
      if (since > live.next && live.next > 0) live.text += '\n…\n';
      live.next = since;
      while (since < until) {
        const part = await this.actions.output(jobId, since);
        if (part.next <= since) break;
        this.appendLive(jobId, live, part);
        since = part.next;
      }
    } catch {
      // The job's state or the next frame tells what happened.
    } finally {
      live.reading = false;
    }
  }

  /** @param {string} jobId @param {LiveOutput} live @param {OutputPart} part */
  appendLive(jobId, live, part) {
    live.text = (live.text + part.output).slice(-LIVE_CHARS);
    live.next = part.next;
    const job = this.jobs.get(jobId);
    if (job && !FINAL_STATES.has(job.state)) this.upsert({ ...job, output: live.text });
  }

  /** @param {Job} job @returns {Card} */
  build(job) {
    /** @type {Record<string, HTMLElement>} */
    const fields = {};
    const field = (/** @type {string} */ name, /** @type {string} */ label) => {
      fields[name] = h('dd', { 'data-testid': `job-${name}` });
      return [h('dt', { text: label }), fields[name]];
    };
    fields['title'] = h('code', { class: 'job-command' });
    fields['state'] = h('span', { class: 'pill', 'data-testid': 'job-state' });
    fields['output'] = h('pre', { class: 'job-output', 'data-testid': 'job-output', tabindex: 0 });
    const error = h('span', { class: 'error', role: 'alert' });
    const cancel = /** @type {HTMLButtonElement} */ (
      h('button', {
        type: 'button',
        class: 'small',
        'data-testid': 'job-cancel',
        text: 'Cancel',
        'aria-label': `Cancel job ${job.id}`,
      })
    );
    const retry = /** @type {HTMLButtonElement} */ (
      h('button', {
        type: 'button',
        class: 'small',
        'data-testid': 'job-retry',
        text: 'Retry',
        'aria-label': `Retry job ${job.id}`,
      })
    );
    cancel.addEventListener('click', () => this.act(job.id, 'cancel'));
    retry.addEventListener('click', () => this.act(job.id, 'retry'));
    const svg = lifecycleSvg();
    const el = h(
      'article',
      {
        class: 'job',
        'data-testid': 'job-card',
        'data-job-id': job.id,
        'aria-label': `Job ${job.id}`,
      },
      h(
        'header',
        {},
        fields['title'],
        fields['state'],
        h('span', { class: 'muted job-id', text: job.id }),
      ),
      svg,
      h(
        'dl',
        {},
        field('labels', 'Labels'),
        field('why', 'Why'),
        field('outcome', 'Outcome'),
        field('exit-code', 'Exit code'),
        field('attempts', 'Attempts'),
        field('times', 'Times'),
      ),
      h('details', { open: true }, h('summary', { text: 'Output (tail)' }), fields['output']),
      h('div', { class: 'actions' }, cancel, retry, error),
    );
    return { el, svg, fields, cancel, retry, error };
  }

  /** @param {Card} card @param {Job} job */
  render(card, job) {
    const f = card.fields;
    card.el.setAttribute('data-state', job.state);
    const what = job.command ?? (job.external ? 'external job' : '…');
    set(f['title'], job.name ? `${job.name} (${what})` : what);
    const labels = Object.entries(job.labels ?? {});
    set(f['labels'], labels.length ? labels.map(([k, v]) => `${k}=${v}`).join(' · ') : '—');
    set(f['state'], job.state);
    f['state']?.setAttribute('class', `pill state-${job.state}`);
    set(f['why'], job.why || '—');
    set(f['outcome'], job.outcome ?? '—');
    set(
      f['exit-code'],
      job.exitCode === null || job.exitCode === undefined ? '—' : String(job.exitCode),
    );
    set(f['attempts'], String(job.attempts ?? 0));
    set(
      f['times'],
      `started ${clock(job.createdAt)} · finished ${clock(job.finishedAt)} · followed up ${clock(job.followedUpAt)}`,
    );
    const output = f['output'];
    if (output) {
      output.classList.toggle('none', !job.output);
      if (output.textContent !== (job.output || '')) {
        output.textContent = job.output || '';
        output.scrollTop = output.scrollHeight;
      }
    }
    updateLifecycle(card.svg, job.state, job.history ?? []);
    card.cancel.disabled = FINAL_STATES.has(job.state);
    card.retry.disabled = job.state !== 'failed';
  }

  /** @param {string} jobId @param {'cancel' | 'retry'} what */
  async act(jobId, what) {
    const card = this.cards.get(jobId);
    if (!card) return;
    card.error.textContent = '';
    card.cancel.disabled = card.retry.disabled = true;
    try {
      const job = await this.actions[what](jobId);
      if (job) this.upsert(job);
      else this.rerender(jobId);
    } catch (error) {
      card.error.textContent = error instanceof Error ? error.message : String(error);
      this.rerender(jobId);
    }
  }

  /** @param {string} jobId */
  rerender(jobId) {
    const card = this.cards.get(jobId);
    const job = this.jobs.get(jobId);
    if (card && job) this.render(card, job);
  }
}

/** @param {HTMLElement | undefined} el @param {string} text */
function set(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}
