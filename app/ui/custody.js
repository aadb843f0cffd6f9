// "Check my share": a holder proves custody of the share they keep.

import { put } from "./api.js";
import { byId, say } from "./dom.js";
import { when } from "./format.js";

const ORIGINS = { init: "at init", "generate-share": "by a ceremony", adopted: "by adoption" };

export class CustodyView {
  constructor(live) {
    this.live = live;
    this.share = byId("custody-share");
    this.message = byId("custody-message");
    byId("custody-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.check();
    });
  }

  render() {}

  async check() {
    const key = this.share.value.trim();
    this.share.value = "";
    if (!key) {
      say(this.message, "error", "type or paste your share in the Share field first.");
      this.share.focus();
      return;
    }
    say(this.message, "info", "Checking your share\u2026");
    try {
      const reply = await put("/shares/verify", { key });
      if (reply.valid) {
        say(this.message, "ok", `this is the share recorded at x ${reply.index}, issued ${ORIGINS[reply.origin] || reply.origin} on ${when(reply.issued_at)}. The check was recorded at ${when(reply.verified_at)}.`);
      } else {
        say(this.message, "error", `this share was not confirmed: ${reply.reason || "it is not the one the service recorded"}.`);
      }
    } catch (refusal) {
      say(this.message, "error", refusal.message);
    }
    this.live.now();
  }
}
