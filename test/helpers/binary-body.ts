/**
 * A binary tensor data body for unit tests of the codec: the header's JSON text (an object is stringified), then the
 * chunks, starting `pad` bytes into its buffer (to put the tensors at any alignment). Returns the body and the
 * header's length in bytes.
 */
export function binaryBody(
  header: unknown,
  chunks: readonly Uint8Array[] = [],
  pad = 0,
): [Uint8Array, number] {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  let total = pad + h.length;
  for (const c of chunks) total += c.length;
  const buf = new Uint8Array(total);
  buf.set(h, pad);
  let at = pad + h.length;
  for (const c of chunks) {
    buf.set(c, at);
    at += c.length;
  }
  return [buf.subarray(pad), h.length];
}
