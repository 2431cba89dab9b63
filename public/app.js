// Baton's dashboard: wires the token, the HTTP API, the event feed and the
// three views (sessions, chat, jobs). Plain ES modules, no build step.

import { createApi, initialToken, saveToken } from './js/api.js';
import { ChatView } from './js/chat.js';
import { EventFeed } from './js/feed.js';
import { JobsView } from './js/jobs.js';
import { lockText, renderSessionList } from './js/sessions.js';

/** @typedef {import('./js/feed.js').Frame} Frame */
/** @typedef {import('./js/sessions.js').Lock} Lock */
/** @typedef {import('./js/sessions.js').Session} Session */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const el = {
  sessions: $('session-list'),
  newSession: /** @type {HTMLFormElement} */ ($('new-session')),
  title: $('session-title'),
  lock: $('session-lock'),
  messages: $('messages'),
  composer: /** @type {HTMLFormElement} */ ($('composer')),
  input: /** @type {HTMLTextAreaElement} */ ($('composer-input')),
  send: /** @type {HTMLButtonElement} */ ($('send')),
  jobs: $('jobs'),
  feed: $('feed-status'),
  who: $('who'),
  notice: $('notice'),
  dialog: /** @type {HTMLDialogElement} */ ($('token-dialog')),
  tokenForm: /** @type {HTMLFormElement} */ ($('token-form')),
  tokenInput: /** @type {HTMLInputElement} */ ($('token-input')),
  tokenError: $('token-error'),
  tokenCancel: $('token-cancel'),
  changeToken: $('change-token'),
};

let token = initialToken();
const api = createApi(
  () => token,
  () => askForToken('The service refused this token (401).'),
);

/** @type {Map<string, Session>} */
const sessions = new Map();
let currentId = /** @type {string | null} */ (null);
let loadGeneration = 0;

// What the feed changed, so that an HTTP answer read before that change does not undo it.
/** @type {Map<string, number>} */
const moved = new Map();
const bump = (/** @type {string} */ key) => moved.set(key, (moved.get(key) ?? 0) + 1);
function movedSince() {
  const before = new Map(moved);
  return (/** @type {string} */ key) => (moved.get(key) ?? 0) !== (before.get(key) ?? 0);
}

const chat = new ChatView(el.messages, { onRetryJob: (jobId) => void jobAction(jobId, 'retry') });
const jobs = new JobsView(el.jobs, {
  cancel: (jobId) => jobAction(jobId, 'cancel'),
  retry: (jobId) => jobAction(jobId, 'retry'),
  output: (jobId, since) => api.jobOutput(jobId, since),
});

const feed = new EventFeed({
  token: () => token,
  onFrame,
  onStatus: showFeedStatus,
  onResync: (why) => {
    console.info('resync:', why);
    void resync();
  },
  onDeadConnection: () => void checkToken(),
});

// ---- token ---------------------------------------------------------------

/** @param {string} [error] */
function askForToken(error) {
  feed.stop();
  el.tokenError.textContent = error ?? '';
  el.tokenInput.value = '';
  el.tokenCancel.hidden = !token || Boolean(error);
  if (!el.dialog.open) el.dialog.showModal();
  el.tokenInput.focus();
}

el.tokenForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const value = el.tokenInput.value.trim();
  if (!value) return;
  token = value;
  saveToken(value);
  el.dialog.close();
  await start();
});
el.tokenCancel.addEventListener('click', () => {
  el.dialog.close();
  if (token) feed.start();
});
el.changeToken.addEventListener('click', () => askForToken());

let checking = false;
/** A feed that cannot connect: a wrong token looks the same as a server that is down. */
async function checkToken() {
  if (checking) return;
  checking = true;
  try {
    await api.info();
  } catch {
    // A 401 already asked for a token; anything else: the service is away, the feed keeps trying.
  } finally {
    checking = false;
  }
}

async function start() {
  try {
    const info = await api.info();
    el.who.textContent = `owner ${info.owner} · ${info.agent?.kind ?? '?'} agent`;
  } catch (error) {
    if (/** @type {any} */ (error).status !== 401)
      say(`Cannot reach the service: ${errorText(error)}`);
    if (/** @type {any} */ (error).status === 401) return;
  }
  sessions.clear();
  renderSessions();
  feed.start(); // the first connection is live-only; its `open` triggers resync()
}

// ---- feed ----------------------------------------------------------------

/** @param {Frame} frame */
function onFrame(frame) {
  const sid = frame.sessionId;
  switch (frame.type) {
    case 'session.created':
      if (frame.data?.session) upsertSession(frame.data.session);
      return;
    case 'session.deleted':
      if (sid) removeSession(sid);
      return;
    case 'session.lock':
      if (!sid) return;
      bump(`lock:${sid}`);
      setLock(sid, /** @type {Lock} */ (frame.data));
      return;
  }
  if (!sid || sid !== currentId) return;
  switch (frame.type) {
    case 'message.queued':
    case 'message.created':
      if (frame.data?.message) chat.addMessage(frame.data.message);
      return;
    case 'job.created':
      if (!frame.jobId) return;
      jobs.created(frame.jobId, sid, /** @type {any} */ (frame.data), frame.at);
      refreshJobSoon(frame.jobId);
      return;
    case 'job.state':
      if (!frame.jobId) return;
      bump(`job:${frame.jobId}`);
      jobs.applyState(frame.jobId, sid, /** @type {any} */ (frame.data), frame.at);
      chat.onJobState(frame.jobId, String(frame.data?.state));
      refreshJobSoon(frame.jobId);
      return;
    case 'job.output':
      if (frame.jobId) jobs.liveOutput(frame.jobId, /** @type {any} */ (frame.data));
      return;
    default:
      chat.onFrame(frame);
  }
}

/** @type {Map<string, ReturnType<typeof setTimeout>>} */
const refreshTimers = new Map();
/** `job.state` frames carry the state, not the output or exit code: read the job again once it settles. */
function refreshJobSoon(/** @type {string} */ jobId) {
  clearTimeout(refreshTimers.get(jobId));
  refreshTimers.set(
    jobId,
    setTimeout(async () => {
      refreshTimers.delete(jobId);
      const changed = movedSince();
      const session = currentId;
      try {
        const job = await api.getJob(jobId);
        if (session === currentId && job.sessionId === currentId && !changed(`job:${jobId}`))
          jobs.upsert(job);
      } catch {
        // Gone or unreachable: the next frame or resync tells.
      }
    }, 120),
  );
}

/** @param {import('./js/feed.js').FeedStatus} status */
function showFeedStatus(status) {
  el.feed.dataset['state'] = status.state;
  el.feed.dataset['seq'] = String(status.lastSeq ?? '');
  const seq = status.lastSeq === null ? '' : ` · seq ${status.lastSeq}`;
  el.feed.textContent =
    status.state === 'live'
      ? `live${seq}`
      : status.state === 'reconnecting'
        ? status.retryInMs !== undefined
          ? `reconnecting in ${(status.retryInMs / 1000).toFixed(1)} s (attempt ${status.attempt}${status.closeCode ? `, closed ${status.closeCode}` : ''})`
          : `reconnecting (attempt ${status.attempt})…`
        : status.state === 'connecting'
          ? 'connecting…'
          : 'not connected';
}

// ---- sessions --------------------------------------------------------------

/** Reads everything shown again over HTTP (first connection, or after a gap). */
async function resync() {
  const changed = movedSince();
  try {
    const { sessions: list } = await api.listSessions();
    const ids = new Set(list.map((/** @type {Session} */ s) => s.id));
    for (const id of [...sessions.keys()]) if (!ids.has(id)) sessions.delete(id);
    for (const session of list) upsertSession(session, false);
    await Promise.all(
      list.slice(0, 50).map(async (/** @type {Session} */ s) => {
        const full = await api.getSession(s.id).catch(() => null);
        if (full?.lock && !changed(`lock:${s.id}`)) setLock(s.id, full.lock);
      }),
    );
  } catch (error) {
    say(`Could not load the sessions: ${errorText(error)}`);
    return;
  }
  renderSessions();
  const wanted = decodeURIComponent(location.hash.slice(1));
  const next = sessions.has(wanted)
    ? wanted
    : currentId && sessions.has(currentId)
      ? currentId
      : (sessions.keys().next().value ?? null);
  await select(next, true);
}

/** @param {Session} session @param {boolean} [render] */
function upsertSession(session, render = true) {
  const known = sessions.get(session.id);
  sessions.set(session.id, { ...known, ...session, lock: session.lock ?? known?.lock });
  if (render) renderSessions();
}

/** @param {string} id */
function removeSession(id) {
  sessions.delete(id);
  renderSessions();
  if (id === currentId) void select(sessions.keys().next().value ?? null);
}

/** @param {string} id @param {Lock} lock */
function setLock(id, lock) {
  const session = sessions.get(id);
  if (!session) return;
  session.lock = lock;
  renderSessions();
  if (id === currentId) renderLock();
}

function renderSessions() {
  renderSessionList(el.sessions, sessions.values(), currentId, {
    select: (id) => void select(id),
    remove: (session) => void deleteSession(session),
  });
}

function renderLock() {
  const lock = currentId ? sessions.get(currentId)?.lock : undefined;
  el.lock.dataset['lock'] = lock?.lock ?? 'unknown';
  el.lock.textContent = currentId ? `Lock: ${lockText(lock, true)}` : '';
}

/** @param {string | null} id @param {boolean} [force] reload even if already shown */
async function select(id, force = false) {
  if (id === currentId && !force) return;
  const switching = id !== currentId;
  currentId = id;
  const generation = ++loadGeneration;
  history.replaceState(null, '', id ? `#${encodeURIComponent(id)}` : location.pathname);
  renderSessions();
  renderLock();
  const session = id ? sessions.get(id) : undefined;
  el.title.textContent = session ? session.title || 'Untitled' : 'No session';
  el.title.title = id ?? '';
  el.input.disabled = el.send.disabled = !id;
  if (switching) {
    chat.reset();
    jobs.reset();
  }
  if (!id) return;
  const changed = movedSince();
  try {
    const [full, { messages }, { jobs: list }] = await Promise.all([
      api.getSession(id),
      api.listMessages(id),
      api.listJobs(id),
    ]);
    if (generation !== loadGeneration) return;
    if (full?.lock && !changed(`lock:${id}`)) setLock(id, full.lock);
    chat.setMessages(messages);
    jobs.setJobs(list, (jobId) => changed(`job:${jobId}`));
  } catch (error) {
    if (generation === loadGeneration) say(`Could not load the session: ${errorText(error)}`);
  }
}

el.newSession.addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ (el.newSession.elements.namedItem('title'));
  try {
    const session = await api.createSession(input.value.trim());
    input.value = '';
    upsertSession(session);
    await select(session.id);
  } catch (error) {
    say(`Could not create the session: ${errorText(error)}`);
  }
});

/** @param {Session} session */
async function deleteSession(session) {
  if (
    !confirm(
      `Delete the session “${session.title || session.id}” with its messages? Its unfinished jobs end as skipped.`,
    )
  )
    return;
  try {
    await api.deleteSession(session.id);
    removeSession(session.id);
  } catch (error) {
    say(`Could not delete the session: ${errorText(error)}`);
  }
}

// ---- chat and jobs -----------------------------------------------------------

el.composer.addEventListener('submit', async (event) => {
  event.preventDefault();
  const content = el.input.value;
  const id = currentId;
  if (!id || content.trim() === '') return;
  el.send.disabled = true;
  try {
    const { message } = await api.sendMessage(id, content);
    el.input.value = '';
    if (id === currentId && message) chat.addMessage(message);
  } catch (error) {
    say(`Could not send: ${errorText(error)}`);
  } finally {
    el.send.disabled = !currentId;
  }
});
el.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    el.composer.requestSubmit();
  }
});

/** @param {string} jobId @param {'cancel' | 'retry'} what */
async function jobAction(jobId, what) {
  const changed = movedSince();
  try {
    const job = await (what === 'cancel' ? api.cancelJob(jobId) : api.retryJob(jobId));
    return changed(`job:${jobId}`) ? null : job;
  } catch (error) {
    say(`Could not ${what} job ${jobId}: ${errorText(error)}`);
    throw error;
  }
}

/** @param {string} text */
function say(text) {
  el.notice.textContent = text;
}

/** @param {unknown} error */
function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}

addEventListener('hashchange', () => {
  const id = decodeURIComponent(location.hash.slice(1));
  if (id && sessions.has(id)) void select(id);
});

if (token) void start();
else askForToken();
