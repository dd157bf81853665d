/** Feedback items (pure): what is kept exactly as sent, and what is refused because it could not be. */
import { describe, expect, it } from 'vitest';
import { parseFeedback } from '../../functions/domain/feedback';
import { codeOf as code } from '../helpers/errors';

describe('parseFeedback', () => {
  it('keeps integer labels within ±(2^53 − 1), fractions and well-formed ids (surrogate pairs included)', () => {
    const items = [
      { inferenceId: 'a', label: Number.MAX_SAFE_INTEGER },
      { inferenceId: 'b', label: -Number.MAX_SAFE_INTEGER },
      { inferenceId: 'c', label: 0.1 },
      { inferenceId: 'req-😀', label: 'cat 😀' },
      { inferenceId: 'd', value: 1e300 },
    ];
    expect(parseFeedback(items)).toEqual(items);
  });

  it('refuses an integer label a JSON number cannot carry exactly, and text with a lone surrogate', () => {
    for (const item of [
      { inferenceId: 'a', label: 2 ** 53 },
      { inferenceId: 'a', label: -(2 ** 53) },
      { inferenceId: 'a', label: 1e300 },
      { inferenceId: 'a\ud800', label: 'x' },
      { inferenceId: '\udc00', label: 'x' },
      { inferenceId: 'a', label: 'x\ud83d' },
    ]) {
      expect(
        code(() => parseFeedback(item)),
        JSON.stringify(item),
      ).toBe('INVALID_FEEDBACK');
    }
  });
});
