// The adoption view: its progress, the lead's start (threshold, how many
// shares are brought, the x of the others, a share limit) with the token and
// nonce its reply carries, each holder's share, and cancelling.

import { put, remove } from "./api.js";
import { byId, copy, fill, hush, say, shown } from "./dom.js";
import { progress } from "./format.js";
import { sendShare } from "./share.js";

/** Return the whole number in a field, null when empty, or throw a sentence naming the field. */
function number(id, name) {
  const text = byId(id).value.trim();
  if (!text) return null;
  if (!/^\d+$/.test(text)) throw new Error(`${name} must be a whole number`);
  return Number(text);
}

/** Return the x listed in the "other shares" field. */
export function knownIndices(text) {
  const items = text.split(/[\s,]+/).filter(Boolean);
  return items.map((item) => {
    const value = /^0x[0-9a-f]+$/i.test(item) ? Number.parseInt(item, 16) : /^\d+$/.test(item) ? Number(item) : Number.NaN;
    if (!Number.isInteger(value)) throw new Error(`the x of the other shares must be whole numbers separated by commas; ${item} is not one`);
    return value;
  });
}

export class AdoptView {
  constructor(live, lead) {
    this.live = live;
    this.lead = lead;
    this.share = byId("adopt-share");
    this.nonce = byId("adopt-nonce-field");
    this.message = byId("adopt-message");
    this.submit = byId("adopt-submit");
    byId("adopt-start").addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    byId("adopt-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    byId("adopt-cancel-button").addEventListener("click", () => this.cancel());
    byId("adopt-token-copy").addEventListener("click", () => copy(byId("adopt-token-value").value, byId("adopt-token-value"), byId("adopt-token-message")));
    byId("adopt-token-hide").addEventListener("click", () => {
      byId("adopt-token-value").value = "";
      hush(byId("adopt-token-message"));
      shown(byId("adopt-token-box"), false);
    });
  }

  render(state) {
    const health = state.health;
    const adoption = state.adoption;
    const text = byId("adopt-progress-text");
    const active = Boolean(adoption?.started);
    if (!health) fill(text, "Waiting for the service\u2026");
    else if (health.initialized) fill(text, "The service is initialized: there is nothing to adopt. Adoption starts on an empty service.");
    else if (active) fill(text, `Adoption in progress (threshold ${adoption.secret_threshold}): ${progress(adoption.progress, adoption.required)}.`);
    else fill(text, "No adoption is in progress.");
    shown(byId("adopt-start"), Boolean(health) && !health.initialized && !active);
    shown(byId("adopt-form"), active);
    shown(byId("adopt-cancel"), active && health?.ceremony_auth !== "open");
    byId("adopt-cancel-token").parentElement.hidden = health?.ceremony_auth === "open";
    if (!active && !(health?.initialized ?? false)) shown(byId("adopt-started"), false);
    this.submit.disabled = !active || this.busy === true;
  }

  async start() {
    const box = byId("adopt-start-message");
    let body;
    try {
      body = {
        secret_threshold: number("adopt-threshold", "the threshold"),
        required: number("adopt-required", "the shares to bring"),
        known_indices: knownIndices(byId("adopt-known").value),
        share_limit: number("adopt-limit", "the share limit"),
      };
    } catch (problem) {
      say(box, "error", problem.message);
      return;
    }
    say(box, "info", "Starting the adoption\u2026");
    try {
      const reply = await put("/adopt/attempt", body);
      hush(box);
      fill(byId("adopt-nonce"), reply.nonce);
      const token = reply.root_token || "";
      byId("adopt-token-value").value = token;
      shown(byId("adopt-token-box"), Boolean(token));
      if (token) {
        byId("adopt-cancel-token").value = token;
        this.lead.adoptToken(token);
      }
      shown(byId("adopt-started"), true);
      byId("adopt-started-title").focus();
    } catch (refusal) {
      say(box, "error", refusal.message);
    }
    this.live.now();
  }

  send() {
    return sendShare(this, "/adopt/update", (reply) => {
      if (reply.complete) {
        say(this.message, "ok", `the share set was adopted: x ${reply.indices.join(", ")} are recorded as adopted. The service is initialized; prove a replacement on the real cluster before relying on it.`);
      } else {
        say(this.message, "ok", `your share was accepted: ${progress(reply.progress, reply.required)}.`);
      }
    });
  }

  async cancel() {
    const box = byId("adopt-cancel-message");
    try {
      await remove("/adopt/attempt", { token: byId("adopt-cancel-token").value.trim() });
      say(box, "ok", "the adoption was cancelled, and the shares submitted to it forgotten.");
      shown(byId("adopt-started"), false);
    } catch (refusal) {
      say(box, "error", refusal.message);
    }
    this.live.now();
  }
}
