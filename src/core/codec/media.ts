/** Media type helpers shared by the codecs. Matching is case-insensitive; parameters are ignored. */

/** The `type/subtype` part of a media type, lower-cased and trimmed (`Text/Plain; x=1` -> `text/plain`). */
export function mediaTypeEssence(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** True for `*\/json` and `*\/*+json` (JSON format 3.1: how a `data` member is to be read). */
export function isJsonMediaType(contentType: string): boolean {
  const essence = mediaTypeEssence(contentType);
  const slash = essence.indexOf('/');
  if (slash <= 0) return false;
  const subtype = essence.slice(slash + 1);
  return subtype === 'json' || subtype.endsWith('+json');
}

/**
 * True for media types whose content is text, so that a structured JSON event can carry the data as
 * a JSON string: `text/*`, `*\/xml`, `*\/*+xml`, `application/javascript` and
 * `application/x-www-form-urlencoded`.
 */
export function isTextMediaType(contentType: string): boolean {
  const essence = mediaTypeEssence(contentType);
  const slash = essence.indexOf('/');
  if (slash <= 0) return false;
  const type = essence.slice(0, slash);
  const subtype = essence.slice(slash + 1);
  if (subtype.length === 0) return false;
  return (
    type === 'text' ||
    subtype === 'xml' ||
    subtype.endsWith('+xml') ||
    essence === 'application/javascript' ||
    essence === 'application/x-www-form-urlencoded'
  );
}

/** The value of a media type parameter (lower-cased name; quotes removed), if present. */
export function mediaTypeParameter(contentType: string, name: string): string | undefined {
  const parts = contentType.split(';');
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i] ?? '';
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim().toLowerCase() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1);
    }
    return value;
  }
  return undefined;
}
