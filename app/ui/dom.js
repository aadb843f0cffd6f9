// Small DOM helpers. Nothing here parses markup: every text goes through
// textContent, so a server sentence can never become HTML (the page's
// Trusted Types policy would refuse it anyway).

/** Return the element with this id; a missing one is a bug of index.html. */
export function byId(id) {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`index.html has no #${id}`);
  return found;
}

/** Make an element with attributes and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

/** Replace an element's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

/** Show or hide an element. */
export function shown(node, visible) {
  node.hidden = !visible;
  return node;
}

const KINDS = {
  ok: { icon: "\u2714", word: "Done:" },
  error: { icon: "\u2716", word: "Refused:" },
  info: { icon: "\u2139", word: "" },
  warn: { icon: "\u26a0", word: "Attention:" },
};

/**
 * Put one message in a box: an icon and a word say its kind, not a colour
 * alone. Errors are announced at once (role=alert), the rest politely.
 */
export function say(box, kind, text, ...more) {
  const { icon, word } = KINDS[kind];
  box.className = `message message-${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  fill(
    box,
    el("span", { class: "message-icon", "aria-hidden": "true" }, icon),
    " ",
    word ? el("strong", {}, word) : null,
    word ? " " : null,
    text,
    ...more,
  );
  box.hidden = false;
}

/** Empty a message box. */
export function hush(box) {
  box.replaceChildren();
  box.hidden = true;
}

/** A <dl> row pair: the term and its description. */
export function fact(term, ...description) {
  return [el("dt", {}, term), el("dd", {}, ...description)];
}

/**
 * Copy a text to the clipboard, saying in ``box`` whether it worked. Without
 * the clipboard (a plain-HTTP page on another host is not a secure context)
 * the text is selected in ``field`` for Ctrl+C.
 */
export async function copy(text, field, box) {
  try {
    if (!navigator.clipboard) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    say(box, "ok", "copied to the clipboard.");
  } catch {
    field.focus();
    if (typeof field.select === "function") field.select();
    say(box, "info", "This browser did not let the page copy: the text is selected, press Ctrl+C (\u2318C on a Mac).");
  }
}

/** Offer ``text`` as a file download named ``name``, without it leaving the page. */
export function download(text, name) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/octet-stream" }));
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own copy; the URL is no longer needed.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}
