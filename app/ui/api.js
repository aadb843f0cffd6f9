// The service's HTTP API, from the page. Every request goes to this page's
// own origin, sends no cookie and no Referer, is never cached, and never
// follows a redirect. A refusal becomes a Refusal whose message is the
// server's own sentence.

export const V1 = "/v1/sys";

/** The server (or the network) refused: ``message`` is what to show. */
export class Refusal extends Error {
  constructor(message, status) {
    super(message);
    this.name = "Refusal";
    this.status = status;
  }
}

/**
 * Send one request and return its JSON reply (null for 204). ``token`` goes
 * in X-Vault-Token, as hvac sends it; it is read from the page's memory by
 * the caller and never stored.
 */
export async function call(method, path, { body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["X-Vault-Token"] = token;
  let response;
  try {
    response = await fetch(V1 + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer",
      mode: "same-origin",
    });
  } catch {
    throw new Refusal("the service cannot be reached: check the network, or that it is running", 0);
  }
  if (response.status === 204) return null;
  let reply;
  try {
    reply = await response.json();
  } catch {
    throw new Refusal(`the service answered ${response.status} without a JSON reply`, response.status);
  }
  if (!response.ok) {
    const errors = Array.isArray(reply?.errors) ? reply.errors : [];
    throw new Refusal(errors.length ? errors.join(" ") : `the service answered ${response.status}`, response.status);
  }
  return reply;
}

export const get = (path, options) => call("GET", path, options);
export const put = (path, body, options = {}) => call("PUT", path, { ...options, body });
export const remove = (path, options) => call("DELETE", path, options);
