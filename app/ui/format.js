// How values are written for people: gpg's fingerprints, dates, base64.

/**
 * Write a fingerprint as gpg --fingerprint does: uppercase, groups of four,
 * and for a v4 key (40 digits) a double space between the two halves.
 */
export function fingerprint(hex) {
  const digits = String(hex || "").replace(/\s+/g, "").toUpperCase();
  const groups = digits.match(/.{1,4}/g) || [];
  if (groups.length === 10) return `${groups.slice(0, 5).join(" ")}  ${groups.slice(5).join(" ")}`;
  return groups.join(" ");
}

/** An RFC 3339 time in the reader's own zone, or a dash. */
export function when(text) {
  if (!text) return "\u2014";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

/** Base64 of bytes (an ArrayBuffer or a Uint8Array). */
export function base64(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = "";
  for (let i = 0; i < view.length; i += 0x8000) {
    binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Bytes of a base64 text; throws on a text that is not base64. */
export function unbase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** "1 of 3 shares provided". */
export function progress(done, required) {
  return `${done} of ${required} share${required === 1 ? "" : "s"} provided`;
}
