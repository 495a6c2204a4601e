/**
 * LIKE patterns (spec 3.4.3), compiled once when the expression is parsed.
 *
 * `%` matches any run of characters (also none), `_` exactly one character, `\%` and `\_` a literal
 * `%` or `_`; every other character, a lone `\` included, matches itself, case-sensitively. Regular
 * expression metacharacters have no meaning here: no RegExp is built from a pattern at all.
 *
 * "Character" is a Unicode code point, as for LENGTH and SUBSTRING. Matching splits the pattern at
 * its `%`s: the first piece must match at the start, the last at the end, and every piece between is
 * taken at its leftmost match. That is exact for this pattern language and costs O(length x pattern)
 * at worst: no backtracking blow-up, whatever pattern a user sends.
 */

/** One pattern character: a literal code point, or null for `_`. */
type Unit = string | null;

export type LikeMatcher = (value: string) => boolean;

const SURROGATE = /[\uD800-\uDFFF]/;

export function compileLikePattern(pattern: string): LikeMatcher {
  const pieces: Unit[][] = [[]];
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    const current = pieces[pieces.length - 1]!;
    if (c === '\\' && (chars[i + 1] === '%' || chars[i + 1] === '_')) {
      current.push(chars[i + 1]!);
      i++;
    } else if (c === '%') {
      pieces.push([]);
    } else if (c === '_') {
      current.push(null);
    } else {
      current.push(c);
    }
  }

  const hasWildcardChar = pieces.some((piece) => piece.includes(null));
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  const middle = pieces.slice(1, -1).filter((piece) => piece.length > 0);

  if (!hasWildcardChar) {
    const firstText = first.join('');
    if (pieces.length === 1) return (value) => value === firstText;
    const lastText = last.join('');
    const middleTexts = middle.map((piece) => piece.join(''));
    const minLength = firstText.length + lastText.length + middleTexts.join('').length;
    if (middleTexts.length === 0) {
      return (value) =>
        value.length >= minLength && value.startsWith(firstText) && value.endsWith(lastText);
    }
    return (value) => {
      if (value.length < minLength || !value.startsWith(firstText) || !value.endsWith(lastText)) {
        return false;
      }
      let pos = firstText.length;
      const limit = value.length - lastText.length;
      for (const text of middleTexts) {
        const at = value.indexOf(text, pos);
        if (at < 0 || at + text.length > limit) return false;
        pos = at + text.length;
      }
      return true;
    };
  }

  // With `_`, compare code point by code point. A string without surrogates is its own code point
  // array; only a value that has some is split.
  const minLength = first.length + last.length + middle.reduce((sum, p) => sum + p.length, 0);
  const exact = pieces.length === 1;
  return (value) => {
    const cps: ArrayLike<string> = SURROGATE.test(value) ? Array.from(value) : value;
    const n = cps.length;
    if (exact) return n === first.length && matchesAt(cps, 0, first);
    if (n < minLength || !matchesAt(cps, 0, first) || !matchesAt(cps, n - last.length, last)) {
      return false;
    }
    let pos = first.length;
    const limit = n - last.length;
    for (const piece of middle) {
      const at = find(cps, pos, limit - piece.length, piece);
      if (at < 0) return false;
      pos = at + piece.length;
    }
    return true;
  };
}

function matchesAt(cps: ArrayLike<string>, at: number, piece: readonly Unit[]): boolean {
  for (let k = 0; k < piece.length; k++) {
    const unit = piece[k];
    if (unit !== null && cps[at + k] !== unit) return false;
  }
  return true;
}

/** The leftmost start in [from, lastStart] where `piece` matches, or -1. */
function find(cps: ArrayLike<string>, from: number, lastStart: number, piece: readonly Unit[]) {
  for (let at = from; at <= lastStart; at++) if (matchesAt(cps, at, piece)) return at;
  return -1;
}
