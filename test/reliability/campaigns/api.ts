/** A small JSON client of Baton's HTTP API for the campaigns. */

/** The server could not be reached or died mid-request: the outcome of the call is unknown. */
export class NetworkError extends Error {
  override readonly name = 'NetworkError';
}

export interface ApiReply {
  status: number;
  body: unknown;
}

/** Calls `method path` with a bearer token and a JSON body; throws {@link NetworkError} on no answer. */
export async function callApi(
  baseUrl: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 15_000,
): Promise<ApiReply> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  let text: string;
  try {
    response = await fetch(baseUrl + path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    throw new NetworkError(`${method} ${path}: ${String(error)}`, { cause: error });
  }
  let parsed: unknown = text;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: response.status, body: parsed };
}

/** Reads a field of a JSON object, for `unknown` bodies. */
export function get(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? Reflect.get(value, key) : undefined;
}

/** A string field, or '' when it is missing or not a string. */
export function str(value: unknown, key: string): string {
  const field = get(value, key);
  return typeof field === 'string' ? field : '';
}

/** An array field, or [] when it is missing or not an array. */
export function list(value: unknown, key: string): unknown[] {
  const field = get(value, key);
  return Array.isArray(field) ? field : [];
}

/** `error.code` of an error body. */
export function errorCode(body: unknown): string {
  return str(get(body, 'error'), 'code');
}
