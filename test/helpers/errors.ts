import { expect } from 'vitest';
import { MaasError } from '../../functions/domain/errors';

/**
 * The machine code of the domain error `fn` throws, or undefined when it throws none. Any error that is not an
 * instance of `type` fails the test.
 */
export function codeOf(
  fn: () => unknown,
  type: abstract new (...args: never[]) => MaasError = MaasError,
): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(type);
    return (e as MaasError).code;
  }
  return undefined;
}
