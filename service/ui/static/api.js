// The memlane HTTP API as the page uses it: one fetch wrapper that sends the key and turns every
// failure (network, 4xx, 5xx, a body that is not JSON) into an ApiError with a readable message.
const KEY_NAME = "memlane.apiKey";

export class ApiError extends Error {
  constructor(status, type, message, field) {
    super(message);
    this.status = status;
    this.type = type;
    this.field = field || null;
  }

  /** One line a person can read: what failed and what the service said. */
  describe() {
    const where = this.field ? ` (${this.field})` : "";
    const what = this.status ? `${this.status} ${this.type}` : this.type;
    return `${what}${where}: ${this.message}`;
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
    const retry = response.headers.get("Retry-After");
    let message = error.message || response.statusText || "the service answered with an error";
    if (retry && response.status >= 500) message += ` — try again in ${retry} s`;
    const err = new ApiError(response.status, error.type || "HTTP error", message, error.field);
    // A refused key anywhere sends the page back to its login form (app.js listens).
    if (response.status === 401) window.dispatchEvent(new CustomEvent("memlane:unauthorized", { detail: err }));
    throw err;
  }
  if (data === null) throw new ApiError(response.status, "BadResponse", "the answer was not JSON");
  return data;
}
