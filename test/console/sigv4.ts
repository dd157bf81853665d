/**
 * SigV4 checked from the algorithm's definition with node:crypto (not the SDK's signer), for the test servers that
 * stand in for AWS: API Gateway (`execute-api`) and CloudWatch (`monitoring`).
 */
import { createHash, createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const ACCESS_KEY_ID = 'AKIDEXAMPLE';
export const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** The region of a valid signature by AKIDEXAMPLE for `service` over what was received; undefined when invalid. */
export function sigV4Region(
  service: string,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
  body: Buffer,
): string | undefined {
  const m = new RegExp(
    `^AWS4-HMAC-SHA256 Credential=${ACCESS_KEY_ID}/(\\d{8})/([^/]+)/${service}/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$`,
  ).exec(String(headers.authorization));
  if (!m) return undefined;
  const [, date, region, signedHeaders, signature] = m as unknown as string[];
  const names = (signedHeaders as string).split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return undefined;
  const url = new URL(path, 'http://h');
  const enc = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
  const canonical = [
    method,
    url.pathname,
    [...url.searchParams]
      .map(([k, v]) => `${enc(k)}=${enc(v)}`)
      .sort()
      .join('&'),
    names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join(''),
    signedHeaders,
    sha256(body),
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', String(headers['x-amz-date']), scope, sha256(canonical)].join('\n');
  const key = hmac(
    hmac(hmac(hmac(`AWS4${SECRET}`, date as string), region as string), service),
    'aws4_request',
  );
  return createHmac('sha256', key).update(toSign).digest('hex') === signature ? region : undefined;
}
