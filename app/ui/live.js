// Live updates without reloading: one poller per page, bounded.
//
// Every POLL_MS it reads health, the attempt, the adoption and (for the
// status view) the registry, and tells the views. It never runs two rounds
// at once, stops while the tab is hidden, backs off on errors, slows down
// after SLOW_AFTER_MS without any change and pauses after STOP_AFTER_MS
// without any change (a "Resume" button starts it again): a page left open
// overnight costs the service nothing.

import { get } from "./api.js";

export const POLL_MS = 2000;
export const SLOW_MS = 10000;
export const MAX_BACKOFF_MS = 30000;
export const SLOW_AFTER_MS = 5 * 60 * 1000;
export const STOP_AFTER_MS = 30 * 60 * 1000;

export class Live {
  constructor() {
    this.state = { health: null, attempt: null, adoption: null, shares: null, error: null };
    this.listeners = [];
    this.wantsRegistry = () => false;
    this.wantsAdoption = () => false;
    this.timer = null;
    this.running = false;
    this.paused = false;
    this.failures = 0;
    this.lastChange = Date.now();
    this.lastText = "";
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.clear();
      else if (!this.paused) this.now();
    });
  }

  /** Call ``listener(state, live)`` after every round. */
  subscribe(listener) {
    this.listeners.push(listener);
  }

  /** Run a round now (after a write, or a click), then go on polling. */
  now() {
    this.paused = false;
    this.lastChange = Date.now();
    this.clear();
    return this.round();
  }

  clear() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  async round() {
    if (this.running) {
      this.again = true; // a write just happened: read once more when this round ends
      return;
    }
    this.running = true;
    this.again = false;
    try {
      await this.read();
      this.failures = 0;
      this.state.error = null;
    } catch (refusal) {
      this.failures += 1;
      this.state.error = refusal.message;
    } finally {
      this.running = false;
    }
    const text = JSON.stringify(this.state);
    if (text !== this.lastText) {
      this.lastText = text;
      this.lastChange = Date.now();
    }
    const idle = Date.now() - this.lastChange;
    this.paused = idle >= STOP_AFTER_MS;
    for (const listener of this.listeners) listener(this.state, this);
    // One timer at most: a round started by a listener may have set one already.
    this.clear();
    if (this.paused || document.hidden || this.running) return;
    let delay = idle >= SLOW_AFTER_MS ? SLOW_MS : POLL_MS;
    if (this.failures) delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** this.failures);
    if (this.again) delay = 0;
    this.retryIn = delay;
    this.timer = setTimeout(() => this.round(), delay);
  }

  async read() {
    const health = await get("/health?uninitcode=200&sealedcode=200");
    const state = { ...this.state, health };
    state.attempt = health.initialized ? await get("/generate-share/attempt") : null;
    const adopting = health.adoption_in_progress || (!health.initialized && this.wantsAdoption());
    state.adoption = adopting ? await get("/adopt/attempt") : null;
    state.shares = health.initialized && this.wantsRegistry() ? await get("/shares") : null;
    Object.assign(this.state, state);
  }
}
