import type { FieldProblem } from '../errors.js';
import { TributaryError } from '../errors.js';

/** The INVALID_EVENT (400) error for a list of problems, with a readable summary. */
export function invalidEvent(
  problems: readonly FieldProblem[],
  what = 'CloudEvent',
): TributaryError {
  const shown = problems.slice(0, 10).map((p) => `${p.field}: ${p.message}`);
  if (problems.length > shown.length) shown.push(`and ${problems.length - shown.length} more`);
  return new TributaryError('INVALID_EVENT', `Invalid ${what}: ${shown.join('; ')}`, { problems });
}
