// Sending one holder's share, the same way from every view that takes one
// (the generate-share attempt, the adoption).
//
// The share is read from its field and the field is emptied at once, before
// anything else can happen; the value goes into one request body and nowhere
// else. One request at a time: the view's button stays disabled until the
// reply (or the refusal) is in.

import { put } from "./api.js";
import { say } from "./dom.js";

/**
 * Send the share in ``view.share`` with the nonce in ``view.nonce`` to
 * ``path``, saying so in ``view.message``; ``accepted(reply)`` tells the holder
 * what the reply means. A refusal shows the server's own sentence.
 */
export async function sendShare(view, path, accepted) {
  const key = view.share.value.trim();
  view.share.value = "";
  const nonce = view.nonce.value.trim();
  if (!key) {
    say(view.message, "error", "type or paste your share in the Share field first.");
    view.share.focus();
    return;
  }
  view.busy = true;
  view.submit.disabled = true;
  say(view.message, "info", "Sending your share\u2026");
  try {
    accepted(await put(path, { key, nonce: nonce || null }));
  } catch (refusal) {
    say(view.message, "error", refusal.message);
  } finally {
    view.busy = false;
    view.live.now();
  }
}
