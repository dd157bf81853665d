/**
 * Runs one Lambda handler the way the Node.js runtime does and prints its result:
 *   node invoke.mjs <bundle file> <export name>   (event JSON on stdin)
 * The result is printed on one line prefixed with RESULT_MARKER (handlers may log to stdout too);
 * a thrown error is printed prefixed with ERROR_MARKER and the process exits with 1. The process's runtime
 * (Node.js version, heap limit, whether stack traces use source maps) is printed prefixed with RUNTIME_MARKER.
 */
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { getHeapStatistics } from 'node:v8';

const RESULT_MARKER = '__MAAS_INVOKE_RESULT__ ';
const ERROR_MARKER = '__MAAS_INVOKE_ERROR__ ';
const RUNTIME_MARKER = '__MAAS_INVOKE_RUNTIME__ ';

register('./lambda-resolve-hooks.mjs', import.meta.url);

const [bundle, exportName = 'handler'] = process.argv.slice(2);
if (!bundle) {
  console.error('usage: node invoke.mjs <bundle file> <export name> < event.json');
  process.exit(2);
}

process.stdout.write(
  `\n${RUNTIME_MARKER}${JSON.stringify({
    node: process.version,
    heapLimitMb: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
    sourceMaps: process.sourceMapsEnabled,
  })}\n`,
);

let input = '';
for await (const chunk of process.stdin) input += chunk;

const started = Date.now();
const context = {
  awsRequestId: `smoke-${started}`,
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'smoke',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:smoke',
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? '1024',
  logGroupName: '/aws/lambda/smoke',
  logStreamName: 'smoke',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, 30_000 - (Date.now() - started)),
  done() {},
  fail() {},
  succeed() {},
};

try {
  const mod = await import(pathToFileURL(bundle).href);
  const handler = mod[exportName];
  if (typeof handler !== 'function') throw new Error(`${bundle} exports no function '${exportName}'`);
  const result = await handler(JSON.parse(input), context);
  finish(`${RESULT_MARKER}${JSON.stringify(result ?? null)}`, 0);
} catch (error) {
  finish(
    `${ERROR_MARKER}${JSON.stringify({ name: error?.name, message: error?.message, stack: error?.stack })}`,
    1,
  );
}

/**
 * Lambda's runtime keeps the event loop turning after a response (it posts the answer, then waits for the next
 * event) and freezes the sandbox only then, so work the handler left queued (a span's datagram to the X-Ray
 * daemon) still goes out; here the process ends once that has had its turns (open keep-alive sockets would hold
 * it).
 */
function finish(line, code) {
  process.stdout.write(`\n${line}\n`, () => setTimeout(() => process.exit(code), 20));
}
