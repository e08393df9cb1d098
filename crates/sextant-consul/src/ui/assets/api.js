// Access to Sextant's HTTP API on the same origin, and live views built on
// Consul blocking queries: each watch keeps one long poll open, restarts it
// with the X-Consul-Index the last answer carried, and backs off on errors.

const WAIT = "30s";
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const NO_INDEX_RETRY_MS = 5_000;

export class ApiError extends Error {
  constructor(status, body) {
    super(body ? `HTTP ${status}: ${body}` : `HTTP ${status}`);
    this.status = status;
  }
}

// ---- connection indicator ---------------------------------------------------

const listeners = new Set();
let failing = new Map(); // watch id -> retry time, for every watch now failing

/** Calls `listener({ok, error, retryInMs})` whenever the connection state changes. */
export function onConnection(listener) {
  listeners.add(listener);
}

function report(id, error, retryInMs) {
  failing = new Map(failing);
  if (error) failing.set(id, retryInMs);
  else failing.delete(id);
  const state = error ? { ok: false, error, retryInMs } : { ok: failing.size === 0 };
  for (const listener of listeners) listener(state);
}

// ---- plain requests ---------------------------------------------------------

/** The path of a KV key, each segment escaped but the slashes kept. */
export function kvPath(key) {
  return "/v1/kv/" + key.split("/").map(encodeURIComponent).join("/");
}

async function request(method, path, body, signal) {
  const response = await fetch(path, { method, body, signal, cache: "no-store" });
  if (!response.ok) {
    throw new ApiError(response.status, (await response.text()).trim());
  }
  return response;
}

export async function getJSON(path, { notFound } = {}) {
  try {
    return await (await request("GET", path)).json();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && notFound !== undefined) {
      return notFound;
    }
    throw error;
  }
}

export async function put(path, body) {
  return (await request("PUT", path, body)).json();
}

export async function del(path) {
  return (await request("DELETE", path)).json();
}

// ---- live views -------------------------------------------------------------

let nextWatchId = 1;

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function backoff(failures) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (failures - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * Keeps `path` (a blocking-query endpoint) current: calls `onData(body, index)`
 * with the first answer and again after every change. A 404 answers
 * `notFound` when given (an empty KV prefix), otherwise it is an error.
 * Returns a function that stops the watch.
 */
export function watch(path, onData, { notFound, onError } = {}) {
  const id = nextWatchId++;
  const stop = new AbortController();
  let index = 0;
  let failures = 0;

  (async () => {
    while (!stop.signal.aborted) {
      const separator = path.includes("?") ? "&" : "?";
      const url = index > 0 ? `${path}${separator}index=${index}&wait=${WAIT}` : path;
      try {
        const response = await fetch(url, { signal: stop.signal, cache: "no-store" });
        const next = Number(response.headers.get("X-Consul-Index")) || 0;
        let body;
        if (response.ok) {
          body = await response.json();
        } else if (response.status === 404 && notFound !== undefined && next > 0) {
          body = notFound;
        } else {
          throw new ApiError(response.status, (await response.text()).trim());
        }
        // An unchanged index is a wait that ran out; one that went backwards
        // (a restored snapshot, another server) means start over.
        const changed = index === 0 || next !== index;
        index = next < index ? 0 : next;
        failures = 0;
        report(id, null);
        if (changed) onData(body, next);
        // An answer without an index cannot block: do not spin on it.
        if (next === 0) await sleep(NO_INDEX_RETRY_MS, stop.signal);
      } catch (error) {
        if (stop.signal.aborted) break;
        failures += 1;
        const retryInMs = backoff(failures);
        report(id, error, retryInMs);
        if (onError) onError(error);
        await sleep(retryInMs, stop.signal);
      }
    }
    report(id, null);
  })();

  return () => stop.abort();
}

/**
 * For endpoints that do not block (the Raft configuration): fetches `path`
 * every `everyMs` and calls `onData` with each answer. Returns a stop function.
 */
export function poll(path, everyMs, onData) {
  const id = nextWatchId++;
  const stop = new AbortController();
  let failures = 0;

  (async () => {
    while (!stop.signal.aborted) {
      let delay = everyMs;
      try {
        const response = await request("GET", path, undefined, stop.signal);
        onData(await response.json());
        if (failures > 0) report(id, null);
        failures = 0;
      } catch (error) {
        if (stop.signal.aborted) break;
        failures += 1;
        delay = Math.max(everyMs, backoff(failures));
        report(id, error, delay);
      }
      await sleep(delay, stop.signal);
    }
    report(id, null);
  })();

  return () => stop.abort();
}
