// The ceremony page: one view at a time, switched without touching the URL
// or the history, all fed by one bounded poller (live.js).

import { AdoptView } from "./adopt.js";
import { CustodyView } from "./custody.js";
import { byId, fill, shown } from "./dom.js";
import { HolderView } from "./holder.js";
import { LeadView } from "./lead.js";
import { Live } from "./live.js";
import { StatusView } from "./status.js";

const live = new Live();
const lead = new LeadView(live);
const views = {
  status: new StatusView(live),
  holder: new HolderView(live),
  lead,
  adopt: new AdoptView(live, lead),
  custody: new CustodyView(live),
};
let current = null;
let chosen = false; // set by the first round, or by the first click

function show(name, { focus = false } = {}) {
  current = name;
  for (const key of Object.keys(views)) shown(byId(`view-${key}`), key === name);
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (focus) byId(`${name}-title`).focus();
  if (name === "status" || name === "adopt") live.now();
}

/** The view the room needs now: a ceremony's, if one is in progress. */
function opening(state) {
  if (state.attempt?.started) return "holder";
  if (state.adoption?.started) return "adopt";
  return "status";
}

function serviceLine(state) {
  const health = state.health;
  if (!health) return state.error ? `The service cannot be reached: ${state.error}.` : "Connecting to the service\u2026";
  const mode = health.ceremony_auth === "token" ? "token mode" : "open mode";
  const what = health.initialized ? `${health.shares_issued} shares exist` : "not initialized";
  return `generate-share ${health.version} at ${location.host}: ${what}, ${mode}.`;
}

live.wantsRegistry = () => current === "status";
live.wantsAdoption = () => current === "adopt" || !chosen;
live.subscribe((state) => {
  if (!chosen && state.health) {
    chosen = true;
    show(opening(state));
  }
  fill(byId("service-line"), serviceLine(state));
  for (const view of Object.values(views)) view.render(state);
  const notice = byId("live-notice");
  if (live.paused) {
    fill(byId("live-text"), "Live updates are paused: nothing changed for 30 minutes.");
    shown(notice, true);
  } else if (state.error) {
    fill(byId("live-text"), `${state.error}; trying again in ${Math.round(live.retryIn / 1000)} s.`);
    shown(notice, true);
  } else {
    shown(notice, false);
  }
});

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    chosen = true;
    show(tab.dataset.view, { focus: true });
  });
}
byId("live-resume").addEventListener("click", () => live.now());
show("status");
live.now();
