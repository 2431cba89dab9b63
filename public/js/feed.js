// The WebSocket event feed (SPEC §6), kept alive: reconnects by itself with
// backoff, resumes with `?since=<last seq seen>` so that no durable event is
// missed, and drops durable frames it has already seen (by seq).

const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 10_000;
// A connection that stayed up this long was healthy: the next drop starts the backoff over.
const HEALTHY_MS = 3_000;
const PING_EVERY_MS = 20_000;
// Nothing at all (not even a pong) for this long: the connection is dead without a FIN.
const SILENCE_MS = 45_000;

/**
 * @typedef {{ seq?: number, at: string, type: string, sessionId?: string, jobId?: string,
 *   turnId?: string, data: Record<string, any> }} Frame
 * @typedef {{ state: 'connecting' | 'live' | 'reconnecting' | 'stopped', attempt: number,
 *   retryInMs?: number, lastSeq: number | null, closeCode?: number }} FeedStatus
 */

export class EventFeed {
  /**
   * @param {{
   *   token: () => string | null,
   *   onFrame: (frame: Frame) => void,
   *   onStatus: (status: FeedStatus) => void,
   *   onResync: (why: string) => void,
   *   onDeadConnection: () => void,
   * }} handlers
   *  onResync: the page must reload what it shows over HTTP (there is no seq to resume from, or a gap was seen);
   *  onDeadConnection: a connection failed before opening (a wrong token looks like this too).
   */
  constructor(handlers) {
    this.handlers = handlers;
    /** Highest durable seq applied; null until the first durable frame. */
    this.lastSeq = /** @type {number | null} */ (null);
    /** @type {WebSocket | null} */
    this.socket = null;
    this.attempt = 0;
    this.stopped = true;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pingTimer = undefined;
    this.lastHeard = 0;
    this.reconnects = 0;
    addEventListener('online', () => {
      if (!this.stopped && this.socket === null) this.connectNow();
    });
  }

  /** Connects (again) from scratch: a new token may mean another owner, so no resume. */
  start() {
    this.stop();
    this.stopped = false;
    this.lastSeq = null;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, 'page stops listening');
    }
    this.status('stopped');
  }

  /** Skips a pending backoff delay. */
  connectNow() {
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** The address of the next connection, resuming after the last seq seen. */
  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ token: this.handlers.token() ?? '' });
    if (this.lastSeq !== null) params.set('since', String(this.lastSeq));
    return `${proto}//${location.host}/v1/events?${params}`;
  }

  connect() {
    if (this.stopped || this.socket) return;
    const resuming = this.lastSeq !== null;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    let opened = false;
    let openedAt = 0;
    this.status(this.attempt === 0 ? 'connecting' : 'reconnecting');

    socket.onopen = () => {
      opened = true;
      openedAt = Date.now();
      this.lastHeard = openedAt;
      this.status('live');
      // Live-only connection: what happened before it is read over HTTP, after the
      // server already sends us what happens next, so nothing falls in between.
      if (!resuming) this.handlers.onResync('connected without a seq to resume from');
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.keepAlive(socket), PING_EVERY_MS);
    };
    socket.onmessage = (event) => {
      this.lastHeard = Date.now();
      /** @type {any} */
      let frame;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (!frame || typeof frame.type !== 'string') return;
      if (frame.type === 'pong' || frame.type === 'subscribed') return;
      if (frame.type === 'error') {
        console.warn('feed refused a frame', frame.error);
        return;
      }
      if (typeof frame.seq === 'number') {
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // seen already
        const gap = this.lastSeq !== null && frame.seq > this.lastSeq + 1;
        this.lastSeq = frame.seq;
        this.handlers.onFrame(frame);
        // Seqs of one owner go up by one; a jump means something was missed: reload what is shown.
        if (gap) this.handlers.onResync(`gap in the feed before seq ${frame.seq}`);
        this.status('live');
        return;
      }
      this.handlers.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      clearInterval(this.pingTimer);
      if (this.stopped) return;
      // 4008 (too slow), 1001 (server restarting), 1006 (network): all resume the same way.
      if (opened && Date.now() - openedAt >= HEALTHY_MS) this.attempt = 0;
      this.attempt += 1;
      this.reconnects += 1;
      const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (this.attempt - 1));
      const jittered = Math.round(delay / 2 + Math.random() * (delay / 2));
      this.status('reconnecting', jittered, event.code);
      this.retryTimer = setTimeout(() => this.connect(), jittered);
      if (!opened) this.handlers.onDeadConnection();
    };
  }

  /** @param {WebSocket} socket */
  keepAlive(socket) {
    if (socket !== this.socket || socket.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeard > SILENCE_MS) {
      socket.close(4000, 'no answer to pings');
      return;
    }
    socket.send(JSON.stringify({ type: 'ping' }));
  }

  /**
   * @param {FeedStatus['state']} state
   * @param {number} [retryInMs]
   * @param {number} [closeCode]
   */
  status(state, retryInMs, closeCode) {
    this.handlers.onStatus({
      state,
      attempt: this.attempt,
      lastSeq: this.lastSeq,
      ...(retryInMs !== undefined ? { retryInMs } : {}),
      ...(closeCode !== undefined ? { closeCode } : {}),
    });
  }
}
