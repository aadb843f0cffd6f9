// The status view: the service's facts, the audit head to note in the
// minutes, the strip of every x from 1 to 255, and the registry.
//
// In the strip each kind of x has its own letter and its own pattern as
// well as its own colour, so that nothing is told by colour alone.

import { byId, el, fact, fill, shown } from "./dom.js";
import { fingerprint, progress, when } from "./format.js";

export const MAX_X = 255;
const ROW = 32;
const ORIGINS = { init: "init", "generate-share": "generate-share ceremony", adopted: "adopted" };

/** Return "issued", "adopted" or "known" for a registry entry. */
export function kind(share) {
  if (share.origin !== "adopted") return "issued";
  return share.verifiable ? "adopted" : "known";
}

const LETTERS = { issued: "I", adopted: "A", known: "K" };

export class StatusView {
  constructor(live) {
    this.live = live;
  }

  render(state) {
    const health = state.health;
    const facts = byId("status-facts");
    if (!health) {
      fill(facts, fact("Service", "waiting for an answer\u2026"));
      return;
    }
    const attempt = state.attempt;
    const adoption = state.adoption;
    const shares = state.shares;
    const rows = [
      fact("Initialized", health.initialized ? "yes" : "no: nothing has been initialized or adopted yet"),
      fact("Ceremony mode", health.ceremony_auth === "token" ? "token (the lead's operator token starts and cancels ceremonies)" : "open (no token: for closed networks only)"),
    ];
    if (health.initialized) {
      rows.push(fact("Threshold", shares ? `${shares.threshold} shares rebuild the key` : "\u2026"));
      rows.push(fact("Shares that exist", `${health.shares_issued} of at most ${health.share_limit}`));
      rows.push(fact("Attempt", attempt?.started ? `in progress: ${progress(attempt.progress, attempt.required)}` : "none in progress"));
      if (shares) rows.push(fact("Custody", `${shares.verified} of ${shares.verifiable} verifiable shares have been checked by their holders`));
    } else {
      rows.push(fact("Adoption", adoption?.started ? `in progress: ${progress(adoption.progress, adoption.required)}` : "none in progress"));
    }
    if (health.sealed) rows.push(fact("Data folder", "cannot be written: no ceremony can be recorded until it is fixed"));
    rows.push(fact("Version", health.version));
    fill(facts, rows);
    shown(byId("status-registry"), Boolean(shares));
    if (shares) this.registry(shares);
  }

  registry(shares) {
    fill(byId("audit-seq"), String(shares.audit_head.seq));
    fill(byId("audit-hash"), shares.audit_head.hash.match(/.{1,8}/g)?.join(" ") || "");
    const byX = new Map(shares.shares.map((share) => [share.index, share]));
    const counts = { issued: 0, adopted: 0, known: 0 };
    // Rows of 32, each labelled with its first x, so that anyone can read an x off the strip.
    const rows = [];
    for (let first = 1; first <= MAX_X; first += ROW) {
      const cells = [el("span", { class: "strip-label", "aria-hidden": "true" }, String(first))];
      for (let x = first; x < first + ROW && x <= MAX_X; x += 1) {
        const share = byX.get(x);
        if (!share) {
          cells.push(el("span", { class: "cell", title: `x ${x}: free`, "data-x": x }));
          continue;
        }
        const which = kind(share);
        counts[which] += 1;
        cells.push(el("span", { class: `cell cell-${which}`, title: `x ${x}: ${which}`, "data-x": x }, LETTERS[which]));
      }
      rows.push(el("div", { class: "strip-row" }, cells));
    }
    fill(byId("strip"), rows);
    const total = shares.shares.length;
    const listed = [...byX.keys()].sort((a, b) => a - b);
    fill(
      byId("strip-summary"),
      `${total} share${total === 1 ? "" : "s"} exist: ${counts.issued} issued, ${counts.adopted} adopted, ${counts.known} known; `,
      `x in use: ${listed.join(", ") || "none"}.`,
    );
    fill(
      byId("registry-rows"),
      [...shares.shares].sort((a, b) => a.index - b.index).map((share) =>
        el(
          "tr",
          {},
          el("td", {}, String(share.index)),
          el("td", {}, `${ORIGINS[share.origin] || share.origin}${kind(share) === "known" ? " (known only)" : ""}`),
          el("td", {}, when(share.issued_at)),
          share.pgp_fingerprint ? el("td", { class: "mono fingerprint" }, fingerprint(share.pgp_fingerprint)) : el("td", {}, "none"),
          el("td", {}, share.verifiable ? (share.verified_at ? when(share.verified_at) : "never") : "cannot be checked (never reached the service)"),
        ),
      ),
    );
  }
}
