// The lead's view: the operator token (in this page's memory only), the
// start of an attempt with the new holder's public key (a file or pasted,
// armored or binary) or a one-time pad, the nonce to announce, the pad shown
// once, and cancelling.

import { put, remove } from "./api.js";
import { byId, copy, el, fill, hush, say, shown } from "./dom.js";
import { base64, progress } from "./format.js";
import { protection } from "./holder.js";

const ARMOR = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

/** Return the base64 the API takes for the key the lead gave, or throw a sentence. */
export async function keyBase64(file, pasted) {
  if (file) {
    // Past this the service refuses the body anyway; the browser need not read it all.
    if (file.size > 1024 * 1024) throw new Error(`the file ${file.name} is ${file.size} bytes; a public key is a few KB (export only the new holder's key)`);
    return base64(await file.arrayBuffer());
  }
  const text = pasted.trim();
  if (!text) throw new Error("choose the new holder's public key file, or paste the key");
  if (text.startsWith(ARMOR)) return base64(new TextEncoder().encode(`${text}\n`));
  const compact = text.replace(/\s+/g, "");
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return compact; // base64 of a binary key, as the API takes it
  throw new Error(`paste the armored key, from ${ARMOR} to its END line, or choose the key file`);
}

export class LeadView {
  constructor(live) {
    this.live = live;
    this.token = byId("lead-token");
    this.message = byId("lead-message");
    this.startForm = byId("lead-start");
    this.startForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    for (const radio of this.startForm.querySelectorAll('input[name="protect"]')) {
      radio.addEventListener("change", () => this.protectChanged());
    }
    byId("lead-pad-copy").addEventListener("click", () => copy(byId("lead-pad-value").value, byId("lead-pad-value"), byId("lead-pad-message")));
    byId("lead-pad-hide").addEventListener("click", () => this.hidePad());
    byId("lead-cancel-button").addEventListener("click", () => {
      shown(byId("lead-cancel-confirm"), true);
      byId("lead-cancel-no").focus();
    });
    byId("lead-cancel-no").addEventListener("click", () => {
      shown(byId("lead-cancel-confirm"), false);
      byId("lead-cancel-button").focus();
    });
    byId("lead-cancel-yes").addEventListener("click", () => this.cancel());
    this.protectChanged();
  }

  get usesPad() {
    return byId("lead-protect-pad").checked;
  }

  protectChanged() {
    shown(byId("lead-key-fields"), !this.usesPad);
  }

  render(state) {
    const auth = state.health?.ceremony_auth;
    shown(byId("lead-token-field"), auth !== "open");
    const padLabel = byId("lead-protect-pad").labels[0];
    fill(padLabel, auth === "open" ? "No PGP key (open mode: the completing holder receives the new share in clear)" : "Mask it with a one-time pad that only I see");
    const attempt = state.attempt;
    const text = byId("lead-progress-text");
    if (!state.health) fill(text, "Waiting for the service\u2026");
    else if (!state.health.initialized) fill(text, "The service is not initialized yet: initialize it (generate-share init), or adopt a share set on the Adoption view.");
    else if (attempt?.started) fill(text, `Attempt in progress: ${progress(attempt.progress, attempt.required)}.`);
    else if (this.endedWith) fill(text, this.endedWith);
    else fill(text, "No attempt is in progress.");
    fill(byId("lead-attempt-keys"), attempt?.started && !this.startedHere ? protection(attempt, auth) : []);
    const active = Boolean(attempt?.started);
    shown(this.startForm, Boolean(state.health?.initialized) && !active);
    shown(byId("lead-cancel"), active);
    if (!active) {
      shown(byId("lead-cancel-confirm"), false);
      if (this.startedHere) {
        // Ended: keep the pad on screen until the lead hides it; the nonce is of no more use.
        this.startedHere = false;
        this.endedWith = state.health.shares_issued > this.issuedBefore ? `The attempt completed: a new share was issued (${state.health.shares_issued} shares exist now). The completing holder has it, masked or encrypted.` : "The attempt ended without a new share.";
        fill(text, this.endedWith);
        shown(byId("lead-started"), !byId("lead-pad").hidden);
        shown(byId("lead-nonce"), false);
        shown(byId("lead-started-title"), false);
      }
    }
  }

  async start() {
    const token = this.token.value.trim();
    let pgpKey = null;
    try {
      if (!this.usesPad) pgpKey = await keyBase64(byId("lead-key-file").files[0], byId("lead-key-text").value);
    } catch (problem) {
      say(this.message, "error", problem.message);
      return;
    }
    say(this.message, "info", "Starting the attempt\u2026");
    try {
      const reply = await put("/generate-share/attempt", { pgp_key: pgpKey }, { token });
      hush(this.message);
      this.started(reply);
    } catch (refusal) {
      say(this.message, "error", refusal.message);
    }
    this.live.now();
  }

  started(reply) {
    this.startedHere = true;
    this.endedWith = "";
    this.issuedBefore = this.live.state.health?.shares_issued ?? 0;
    shown(byId("lead-nonce"), true);
    shown(byId("lead-started-title"), true);
    fill(byId("lead-nonce"), reply.nonce);
    fill(byId("lead-started-keys"), protection(reply, this.live.state.health?.ceremony_auth));
    const pad = reply.otp || "";
    byId("lead-pad-value").value = pad;
    hush(byId("lead-pad-message"));
    shown(byId("lead-pad"), Boolean(pad));
    byId("lead-key-file").value = "";
    byId("lead-key-text").value = "";
    shown(byId("lead-started"), true);
    byId("lead-started-title").focus();
  }

  hidePad() {
    byId("lead-pad-value").value = "";
    hush(byId("lead-pad-message"));
    shown(byId("lead-pad"), false);
    if (!this.startedHere) shown(byId("lead-started"), false);
  }

  async cancel() {
    shown(byId("lead-cancel-confirm"), false);
    try {
      await remove("/generate-share/attempt", { token: this.token.value.trim() });
      say(this.message, "ok", "the attempt was cancelled, and the shares submitted to it forgotten.");
      this.hidePad();
      shown(byId("lead-started"), false);
      this.startedHere = false;
      this.endedWith = "";
    } catch (refusal) {
      say(this.message, "error", refusal.message);
    }
    this.live.now();
  }

  /** Take the operator token an adoption's start returned. */
  adoptToken(token) {
    this.token.value = token;
  }
}
