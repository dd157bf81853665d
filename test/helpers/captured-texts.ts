import { expect } from 'vitest';

/**
 * The request and answer of each captured record line, parsed: the JSON texts a record holds (each must be recorded
 * with encoding JSON).
 */
export function capturedTexts(
  lines: readonly string[],
): { request: unknown; response: Record<string, unknown> }[] {
  return lines.map((line) => {
    const { endpointInput, endpointOutput } = (
      JSON.parse(line) as { captureData: Record<string, { data: string; encoding: string }> }
    ).captureData;
    expect([endpointInput?.encoding, endpointOutput?.encoding]).toEqual(['JSON', 'JSON']);
    return { request: JSON.parse(endpointInput!.data), response: JSON.parse(endpointOutput!.data) };
  });
}
