// The HTTP side of the page: where the token lives and how calls carry it.

const TOKEN_KEY = 'baton.token';

/**
 * The token: taken from `?token=` (the address `baton serve` prints) and then
 * removed from the address bar, or else the one kept in localStorage.
 * @returns {string | null}
 */
export function initialToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    saveToken(fromUrl);
    url.searchParams.delete('token');
    // Keep the token out of history, bookmarks and screenshots of the address bar.
    history.replaceState(null, '', url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return storedToken();
}

/** @returns {string | null} */
export function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** @param {string} token */
export function saveToken(token) {
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Private mode without storage: the token lives as long as the page.
  }
}

/** An error answer of the API (`{ error: { code, message } }`) or a failed request. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/**
 * A client of the HTTP API for one token.
 * @param {() => string | null} getToken
 * @param {() => void} onUnauthorized called on every 401
 */
export function createApi(getToken, onUnauthorized) {
  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  async function call(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { authorization: `Bearer ${getToken() ?? ''}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, 'network', `the service did not answer (${String(error)})`);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    /** @type {any} */
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401) onUnauthorized();
      const error = data?.error ?? {};
      throw new ApiError(
        response.status,
        error.code ?? 'http_error',
        error.message ?? `HTTP ${response.status}`,
      );
    }
    return data;
  }
  const id = encodeURIComponent;
  return {
    info: () => call('GET', '/v1/info'),
    listSessions: () => call('GET', '/v1/sessions'),
    /** @param {string} sessionId */
    getSession: (sessionId) => call('GET', `/v1/sessions/${id(sessionId)}`),
    /** @param {string} title */
    createSession: (title) => call('POST', '/v1/sessions', title ? { title } : {}),
    /** @param {string} sessionId */
    deleteSession: (sessionId) => call('DELETE', `/v1/sessions/${id(sessionId)}`),
    /** @param {string} sessionId */
    listMessages: (sessionId) => call('GET', `/v1/sessions/${id(sessionId)}/messages`),
    /** @param {string} sessionId @param {string} content */
    sendMessage: (sessionId, content) =>
      call('POST', `/v1/sessions/${id(sessionId)}/messages`, { content }),
    /** @param {string} sessionId */
    listJobs: (sessionId) => call('GET', `/v1/jobs?sessionId=${id(sessionId)}`),
    /** @param {string} jobId */
    getJob: (jobId) => call('GET', `/v1/jobs/${id(jobId)}`),
    /** @param {string} jobId @param {number} since */
    jobOutput: (jobId, since) => call('GET', `/v1/jobs/${id(jobId)}/output?since=${since}`),
    /** @param {string} jobId */
    cancelJob: (jobId) => call('POST', `/v1/jobs/${id(jobId)}/cancel`),
    /** @param {string} jobId */
    retryJob: (jobId) => call('POST', `/v1/jobs/${id(jobId)}/retry`),
  };
}

/** @typedef {ReturnType<typeof createApi>} Api */
