// The holder's view: the attempt's progress, the key the new share goes to,
// the Nonce and Share fields, and for the completing holder the new share.
//
// The share is sent by share.js: read from its field, the field emptied at
// once, the value in one request body. Nothing is stored, nothing is put in
// a URL (no field has a name, and the page's policy forbids a form to
// navigate). JavaScript cannot wipe a string: clearing is best effort, as
// everywhere a secret passes through a garbage-collected runtime.

import { byId, download, el, fill, hush, say, shown } from "./dom.js";
import { fingerprint, progress } from "./format.js";
import { sendShare } from "./share.js";

/** The PGP key (or pad) an attempt's new share goes to, for the room to compare. */
export function protection(attempt, auth) {
  if (!attempt?.started) return [];
  if (attempt.pgp_fingerprint) {
    return [
      el("p", {}, "The new share will be encrypted to this PGP key. Compare it out loud with the new holder's ", el("code", {}, "gpg --fingerprint --with-subkey-fingerprints"), ":"),
      el(
        "dl",
        { class: "facts keys" },
        el("dt", {}, "Key fingerprint"),
        el("dd", { class: "mono fingerprint" }, fingerprint(attempt.pgp_fingerprint)),
        el("dt", {}, "Encryption subkey"),
        el("dd", { class: "mono fingerprint" }, fingerprint(attempt.pgp_subkey_fingerprint)),
      ),
    ];
  }
  if (auth === "token") {
    return [el("p", {}, "No PGP key: the new share will be masked with the lead's one-time pad.")];
  }
  return [
    el(
      "p",
      { class: "message message-warn" },
      el("span", { "aria-hidden": "true" }, "\u26a0 "),
      el("strong", {}, "Attention:"),
      " no PGP key and no pad (open mode): the holder who completes the attempt receives the new share in clear.",
    ),
  ];
}

export class HolderView {
  constructor(live) {
    this.live = live;
    this.form = byId("holder-form");
    this.nonce = byId("holder-nonce");
    this.share = byId("holder-share");
    this.submit = byId("holder-submit");
    this.message = byId("holder-message");
    this.done = byId("holder-done");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    byId("holder-download").addEventListener("click", () => {
      download(`${byId("holder-new-share").value}\n`, "new-share.b64");
      say(byId("holder-download-message"), "ok", "the file new-share.b64 was handed to your browser's downloads.");
    });
    byId("holder-done-close").addEventListener("click", () => this.forget());
  }

  render(state) {
    const attempt = state.attempt;
    const auth = state.health?.ceremony_auth;
    const text = byId("holder-progress-text");
    const bar = byId("holder-progress");
    if (!state.health) {
      fill(text, "Waiting for the service\u2026");
    } else if (!state.health.initialized) {
      fill(text, "The service is not initialized yet: there is nothing to submit.");
    } else if (attempt?.started) {
      fill(text, `Attempt in progress: ${progress(attempt.progress, attempt.required)}.`);
    } else if (!this.done.hidden) {
      fill(text, "The attempt is complete: your share was the last one needed. The new share is below.");
    } else {
      fill(text, "No attempt is in progress. Wait for the lead to start one: this page updates by itself.");
    }
    const active = Boolean(attempt?.started);
    shown(bar, active);
    if (active) {
      bar.max = attempt.required;
      bar.value = attempt.progress;
    }
    fill(byId("holder-protection"), protection(attempt, auth));
    this.submit.disabled = !active || this.busy === true;
    this.nonce.required = auth === "token";
  }

  send() {
    return sendShare(this, "/generate-share/update", (reply) => {
      if (reply.complete) this.complete(reply);
      else say(this.message, "ok", `your share was accepted: ${progress(reply.progress, reply.required)}.`);
    });
  }

  complete(reply) {
    const auth = this.live.state.health?.ceremony_auth;
    byId("holder-new-share").value = reply.key_base64;
    const next = byId("holder-next");
    if (reply.pgp_fingerprint) {
      fill(byId("holder-done-what"), "It is encrypted to the new holder's PGP key ", el("span", { class: "mono fingerprint" }, fingerprint(reply.pgp_fingerprint)), ": only they can read it.");
      fill(
        next,
        el("li", {}, "Download it, and give the file new-share.b64 to the new holder (a USB stick, or e-mail: it is encrypted)."),
        el("li", {}, "The new holder decrypts it with their own key: ", el("code", {}, "generate-share decode --key-file new-share.b64"), ", or with gpg alone: ", el("code", {}, "base64 -d new-share.b64 | gpg --decrypt | xxd -p -c 256"), "."),
        el("li", {}, "Everyone checks on the Status view that the registry shows one share more."),
      );
    } else if (auth === "token") {
      fill(byId("holder-done-what"), "It is masked with the lead's one-time pad: without the pad it is worthless.");
      fill(
        next,
        el("li", {}, "Download it, and give the file new-share.b64 to the lead (or to the new holder, to whom the lead gives the pad)."),
        el("li", {}, "The lead unmasks it with the pad: ", el("code", {}, `generate-share decode --otp - --check ${reply.otp_check || "CHECK"} --key-file new-share.b64`), " (the pad is asked without echo; the check refuses a wrong pad)."),
        el("li", {}, "Everyone checks on the Status view that the registry shows one share more."),
      );
    } else {
      fill(byId("holder-done-what"), "Open mode without a PGP key: this is the new share itself, in clear. Hand it to its new holder and do not keep a copy.");
      fill(
        next,
        el("li", {}, "Download it and give the file to the new holder; delete your copy."),
        el("li", {}, "Everyone checks on the Status view that the registry shows one share more."),
      );
    }
    const field = byId("holder-new-share");
    field.rows = Math.min(10, Math.ceil(reply.key_base64.length / 64));
    shown(this.done, true);
    shown(this.form, false); // one thing at a time: the new share, not another submission
    hush(this.message);
    byId("holder-done-title").focus();
  }

  /** Drop the new share from the page. */
  forget() {
    byId("holder-new-share").value = "";
    hush(byId("holder-download-message"));
    shown(this.done, false);
    shown(this.form, true);
    this.render(this.live.state);
    this.nonce.focus();
  }
}
