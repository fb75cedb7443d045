// The memlane HTTP API as the page uses it: one fetch wrapper that sends the key and turns every
// failure (network, 4xx, 5xx, a body that is not JSON) into an ApiError with a readable message.
const KEY_NAME = "memlane.apiKey";

// A headline a person understands for each error type the service sends (docs/http.md).
const TITLES = {
  StoreUnavailable: "The memory store is not answering",
  RedisUnavailable: "Redis is not answering",
  EmbedderUnavailable: "The embedding model is not answering",
  RateLimited: "Too many requests for this key",
  NotFound: "Not found",
  InvalidInput: "That input was refused",
  Unreachable: "The memlane service does not answer",
};

export class ApiError extends Error {
  constructor(status, type, message, field, retryAfter) {
    super(message);
    this.status = status;
    this.type = type;
    this.field = field || null;
    this.retryAfter = retryAfter || null;
  }

  /** A short headline for the page. */
  title() {
    return TITLES[this.type] || (this.status >= 500 ? "The service failed" : "The request was refused");
  }

  /** One line a person can read: status, type, field, and when to try again. */
  summary() {
    const what = this.status ? `${this.status} ${this.type}` : this.type;
    const where = this.field ? ` in ${this.field}` : "";
    const retry = this.retryAfter ? ` · try again in ${this.retryAfter} s` : "";
    return `${what}${where}${retry}`;
  }

  /** Everything on one line: what failed and what the service said. */
  describe() {
    return `${this.summary()}: ${this.message}`;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY_NAME),
  set: (value) => sessionStorage.setItem(KEY_NAME, value),
  clear: () => sessionStorage.removeItem(KEY_NAME),
};

/** A user id as one path segment (a/b is a%2Fb, as the API expects). */
export const seg = (value) => encodeURIComponent(value);

/** Query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(name, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** Call the API; resolves with the parsed JSON body or rejects with an ApiError. */
export async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${key.get() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "Unreachable", `the memlane service did not answer (${err.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const message = error.message || response.statusText || "the service answered with an error";
    const retry = response.headers.get("Retry-After");
    const err = new ApiError(response.status, error.type || "HTTPError", message, error.field, retry);
    // A refused key anywhere sends the page back to its login form (app.js listens).
    if (response.status === 401) window.dispatchEvent(new CustomEvent("memlane:unauthorized", { detail: err }));
    throw err;
  }
  if (data === null) throw new ApiError(response.status, "BadResponse", "the answer was not JSON");
  return data;
}
