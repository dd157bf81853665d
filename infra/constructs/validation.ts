/**
 * Synth-time checks of the maas constructs' props and of the app's `-c` context parameters. A value that
 * could not deploy, or would deploy a service that cannot work, stops `cdk synth` with a
 * {@link MaasValidationError} that names the setting, the bad value and the fix. Names and refs are checked
 * by `functions/domain/names.ts`, the same validator the functions use at run time.
 */
import { type Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { LIMITS } from '../../functions/contract/limits';
import { parsePreload, quoted, validateAliasName, validateModelName } from '../../functions/domain/names';

/** Where a checked value comes from: a construct prop (`predict.memorySize`) or a `-c` context parameter. */
export type Setting =
  | {
      /** Path of the prop in the construct's props, e.g. `predict.memorySize`. */
      readonly prop: string;
      /** The construct whose prop it is (its path prefixes the message). */
      readonly scope: IConstruct;
    }
  | {
      /** The context key, e.g. `memory` for `-c memory=...`. */
      readonly context: string;
    };

/** What a valid value looks like, for the message's fix. */
interface Fix {
  /** e.g. `a whole number from 128 to 10240 (MB)`. */
  readonly expected: string;
  /** A valid prop value as written in TypeScript, e.g. `1769`. */
  readonly propExample: string;
  /** A valid `-c` value, e.g. `3008`. @default - no example */
  readonly contextExample?: string;
}

/**
 * A prop or context parameter that fails its check. Thrown from construct constructors and from
 * `propsFromContext` (infra/app.ts), before anything is synthesized.
 */
export class MaasValidationError extends Error {
  override readonly name = 'MaasValidationError';
  /** The prop path (`predict.memorySize`) or the context key (`memory`). */
  readonly setting: string;
  /** Path of the construct whose prop failed; undefined for a context parameter. */
  readonly constructPath: string | undefined;

  constructor(setting: Setting, message: string, options?: { readonly cause?: unknown }) {
    const path = 'prop' in setting ? setting.scope.node.path : undefined;
    super(path ? `${path}: ${message}` : message, options);
    this.setting = 'prop' in setting ? setting.prop : setting.context;
    this.constructPath = path;
  }
}

/** How the setting is named in a message: `prop predict.memorySize` or `context parameter -c memory`. */
function settingName(setting: Setting): string {
  return 'prop' in setting ? `prop ${setting.prop}` : `context parameter -c ${setting.context}`;
}

function invalid(setting: Setting, value: string, problem: string, fix: Fix, cause?: unknown): never {
  const shown = `'${quoted(value)}'`;
  const message =
    'prop' in setting
      ? `invalid ${settingName(setting)} ${shown}: ${problem}. Set ${setting.prop} to ${fix.expected}, e.g. ${fix.propExample}.`
      : `Invalid ${settingName(setting)}=${shown}: ${problem}. Pass ${fix.expected}${
          fix.contextExample ? `, e.g. -c ${setting.context}=${fix.contextExample}` : ''
        }.`;
  throw new MaasValidationError(setting, message, cause === undefined ? undefined : { cause });
}

/**
 * Lambda's memory range: a whole number of MB from 128 to 10240. `raw` is the value as given (a context
 * parameter's text). Unresolved tokens pass.
 */
export function checkMemorySize(memorySize: number, setting: Setting, raw = String(memorySize)): number {
  if (Token.isUnresolved(memorySize)) return memorySize;
  const { lambdaMinMemoryMb: min, lambdaMaxMemoryMb: max } = LIMITS;
  if (!Number.isInteger(memorySize) || memorySize < min || memorySize > max) {
    invalid(setting, raw, `Lambda's memory size is a whole number of MB from ${min} to ${max}`, {
      expected: 'a whole number in that range',
      propExample: '1769 (one full vCPU)',
      contextExample: '3008',
    });
  }
  return memorySize;
}

/**
 * The timeout of a function whose work is the HTTP API's response: at most `LIMITS.apiFunctionMaxTimeoutSeconds`
 * (29 s), under API Gateway's integration timeout (30 s) after which the API answers 503 whatever the function
 * does, so the function always answers first. Unresolved tokens pass.
 */
export function checkApiTimeout(timeout: Duration, setting: Setting): Duration {
  if (timeout.isUnresolved()) return timeout;
  const limit = LIMITS.apiFunctionMaxTimeoutSeconds;
  if (timeout.toMilliseconds() > limit * 1000) {
    invalid(
      setting,
      timeout.toHumanString(),
      `the function serves the HTTP API, whose integration timeout is ${LIMITS.apiIntegrationTimeoutSeconds} seconds (an API Gateway limit): past it the API answers 503 while the function keeps running, so the function must time out first, within ${limit} seconds`,
      { expected: `at most ${limit} seconds`, propExample: `Duration.seconds(${limit})` },
    );
  }
  return timeout;
}

/**
 * Checks `MAAS_PRELOAD` (`name@ref,...`) with the parser the predict function reads it with
 * (`parsePreload` of `functions/domain/names.ts`), so that a list synth accepts is one the function accepts.
 */
export function checkPreload(preload: string, setting: Setting): string {
  if (Token.isUnresolved(preload)) return preload;
  const fix: Fix = {
    expected:
      'a comma-separated list of model names, each optionally followed by @ and a version number or an alias name',
    propExample: "'iris@prod,mnist@2'",
    contextExample: 'iris@prod,mnist@2',
  };
  try {
    parsePreload(preload);
  } catch (e) {
    invalid(setting, preload, (e as Error).message, fix, e);
  }
  return preload;
}

/**
 * A JWT authorizer's issuer (an https URL, from which API Gateway fetches the OpenID configuration) and
 * audience (at least one client id). Unresolved tokens pass.
 */
export function checkJwtAuthorization(
  jwt: { readonly issuer: string; readonly audience: readonly string[] },
  settings: { readonly issuer: Setting; readonly audience: Setting },
): void {
  if (!Token.isUnresolved(jwt.issuer) && !isHttpsUrl(jwt.issuer)) {
    invalid(settings.issuer, jwt.issuer, 'the JWT issuer is the https URL of the identity provider', {
      expected: 'its https URL',
      propExample: "'https://cognito-idp.<region>.amazonaws.com/<userPoolId>'",
      contextExample: 'https://cognito-idp.<region>.amazonaws.com/<userPoolId>',
    });
  }
  const audience = jwt.audience.filter((a) => Token.isUnresolved(a) || a.trim() !== '');
  if (audience.length === 0) {
    invalid(
      settings.audience,
      jwt.audience.join(','),
      'a JWT authorizer needs at least one audience (client id)',
      {
        expected: 'the client ids whose tokens are accepted',
        propExample: "['<clientId>']",
        contextExample: '<clientId>[,<clientId>...]',
      },
    );
  }
}

/**
 * A scope a JWT route requires (`maas/infer`, `maas/admin`): one OAuth scope token (RFC 6749 §3.3: printable
 * ASCII without space, `"` or `\`), as API Gateway compares it with the token's `scope` claim. Unresolved
 * tokens pass.
 */
export function checkJwtScope(scope: string, setting: Setting): string {
  if (Token.isUnresolved(scope)) return scope;
  if (!/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope)) {
    invalid(
      setting,
      scope,
      'a route scope is one OAuth scope: printable ASCII without spaces, quotes or backslashes',
      {
        expected: 'a scope name of your identity provider',
        propExample: "'maas/infer'",
        contextExample: 'maas/infer',
      },
    );
  }
  return scope;
}

/**
 * Firehose's buffering interval with dynamic partitioning: 60 to 900 seconds (a delivery stream that partitions
 * its records cannot flush more often than once a minute). Unresolved tokens pass.
 */
export function checkCaptureBufferInterval(interval: Duration, setting: Setting): Duration {
  if (interval.isUnresolved()) return interval;
  const seconds = interval.toMilliseconds() / 1000;
  if (!Number.isInteger(seconds) || seconds < 60 || seconds > 900) {
    invalid(
      setting,
      interval.toHumanString(),
      'Firehose buffers a dynamically partitioned delivery stream for 60 to 900 whole seconds',
      { expected: 'a whole number of seconds from 60 to 900', propExample: 'Duration.seconds(60)' },
    );
  }
  return interval;
}

/**
 * Firehose's buffer size with dynamic partitioning: a whole number of MiB from 64 to 128. Unresolved tokens pass.
 */
export function checkCaptureBufferSize(sizeMiB: number, setting: Setting): number {
  if (Token.isUnresolved(sizeMiB)) return sizeMiB;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 64 || sizeMiB > 128) {
    invalid(
      setting,
      String(sizeMiB),
      'Firehose buffers a dynamically partitioned delivery stream in 64 to 128 MiB',
      { expected: 'a whole number of MiB from 64 to 128', propExample: '64' },
    );
  }
  return sizeMiB;
}

/** A model name, checked by `validateModelName` (functions/domain/names.ts), as the functions check it. */
export function checkModelName(name: string, setting: Setting): string {
  if (Token.isUnresolved(name)) return name;
  try {
    validateModelName(name);
  } catch (e) {
    invalid(setting, name, (e as Error).message, { expected: 'a model name', propExample: "'iris'" }, e);
  }
  return name;
}

/** An alias name, checked by `validateAliasName` (functions/domain/names.ts), as the functions check it. */
export function checkAliasName(alias: string, setting: Setting): string {
  if (Token.isUnresolved(alias)) return alias;
  try {
    validateAliasName(alias);
  } catch (e) {
    invalid(setting, alias, (e as Error).message, { expected: 'an alias name', propExample: "'prod'" }, e);
  }
  return alias;
}

/** An error-rate threshold: a fraction of the requests, above 0 and at most 1 (0.05 is 5 %). */
export function checkErrorRate(rate: number, setting: Setting): number {
  if (Token.isUnresolved(rate)) return rate;
  if (!Number.isFinite(rate) || rate <= 0 || rate > 1) {
    invalid(
      setting,
      String(rate),
      'the error rate is a fraction of the requests (server errors / requests), above 0 and at most 1',
      { expected: 'a number above 0 and at most 1', propExample: '0.05 (5 %)' },
    );
  }
  return rate;
}

/** A latency threshold in milliseconds: a number above 0. */
export function checkLatencyMs(ms: number, setting: Setting): number {
  if (Token.isUnresolved(ms)) return ms;
  if (!Number.isFinite(ms) || ms <= 0) {
    invalid(setting, String(ms), 'a latency threshold is a positive number of milliseconds', {
      expected: 'a number of milliseconds above 0',
      propExample: '500',
    });
  }
  return ms;
}

/** A count of evaluation periods of an alarm: a whole number from 1 upward. */
export function checkEvaluationPeriods(n: number, setting: Setting): number {
  if (Token.isUnresolved(n)) return n;
  if (!Number.isInteger(n) || n < 1) {
    invalid(setting, String(n), 'an alarm evaluates a whole number of periods, at least 1', {
      expected: 'a whole number from 1 upward',
      propExample: '3',
    });
  }
  return n;
}

/**
 * The time an alarm evaluates, `period × evaluationPeriods`: CloudWatch allows at most one day (86,400 s) when the
 * period is under one hour, at most seven days (604,800 s) otherwise. Reported on the evaluation count, with the
 * largest count the period allows. Unresolved tokens pass.
 */
export function checkAlarmEvaluationWindow(
  period: Duration,
  evaluationPeriods: number,
  setting: Setting,
): number {
  if (period.isUnresolved() || Token.isUnresolved(evaluationPeriods)) return evaluationPeriods;
  const seconds = period.toSeconds();
  const limit = seconds < 3600 ? 86_400 : 604_800;
  if (seconds * evaluationPeriods > limit) {
    const most = Math.floor(limit / seconds);
    invalid(
      setting,
      String(evaluationPeriods),
      `${evaluationPeriods} periods of ${period.toHumanString()} make ${seconds * evaluationPeriods} seconds, and CloudWatch evaluates at most ${limit === 86_400 ? '86,400 seconds (one day) when the period is under one hour' : '604,800 seconds (seven days) when the period is one hour or longer'}`,
      {
        expected: `at most ${most} with this period (or a longer period)`,
        propExample: String(Math.min(3, most)),
      },
    );
  }
  return evaluationPeriods;
}

/** A least request count for the error-rate alarm to evaluate a period: a whole number from 0. */
export function checkMinRequests(n: number, setting: Setting): number {
  if (Token.isUnresolved(n)) return n;
  if (!Number.isInteger(n) || n < 0) {
    invalid(setting, String(n), 'a request count is a whole number, at least 0', {
      expected: 'a whole number from 0 upward',
      propExample: '20',
    });
  }
  return n;
}

/** CloudWatch's longest alarm name. */
export const ALARM_NAME_MAX_LENGTH = 255;

/**
 * The name of an alarm the stack creates for an alias (`<stack>-<model>@<alias>-<kind>`): at most 255 characters
 * (CloudWatch's limit). Too long only with a long stack name and long model and alias names. Unresolved tokens pass.
 */
export function checkAlarmName(name: string, setting: Setting): string {
  if (Token.isUnresolved(name)) return name;
  if (name.length > ALARM_NAME_MAX_LENGTH) {
    invalid(
      setting,
      name,
      `the alarm would be named with ${name.length} characters (stack name, model, alias and kind), and CloudWatch allows ${ALARM_NAME_MAX_LENGTH}`,
      {
        expected: `a shorter name (or deploy the stack under a shorter name) so that the alarm name fits in ${ALARM_NAME_MAX_LENGTH} characters`,
        propExample: "'prod'",
      },
    );
  }
  return name;
}

/**
 * Minutes between two checks of the rollout controller (`rate(n minutes)` of an EventBridge schedule, whose
 * finest rate is one minute): a whole number from 1 to 60. A rollout's bake times are honoured to within this.
 * `raw` is the value as given (a context parameter's text). Unresolved tokens pass.
 */
export function checkRolloutTickMinutes(minutes: number, setting: Setting, raw = String(minutes)): number {
  if (Token.isUnresolved(minutes)) return minutes;
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 60) {
    invalid(
      setting,
      raw,
      'the controller checks rollouts on an EventBridge schedule, whose finest rate is 1 minute; bake times are honoured to within the interval, so more than an hour would stretch them',
      { expected: 'a whole number of minutes from 1 to 60', propExample: '1', contextExample: '1' },
    );
  }
  return minutes;
}

/**
 * A function's concurrency settings: reserved concurrency a whole number of at least 1 (0 throttles every
 * invocation: the function would never run), provisioned concurrency a whole number of at least 0 and, with both
 * set, at most the reserved (Lambda refuses more, in the middle of the deployment). `provisionedOffered`: whether
 * the construct puts provisioned concurrency anywhere (an alias the caller invokes); where it does not, a value
 * would be ignored, so it is refused. Unresolved tokens pass.
 */
export function checkConcurrency(
  sizing: {
    readonly reservedConcurrentExecutions?: number;
    readonly provisionedConcurrentExecutions?: number;
  },
  prefix: string,
  scope: IConstruct,
  provisionedOffered: boolean,
): void {
  const reserved = sizing.reservedConcurrentExecutions;
  const provisioned = sizing.provisionedConcurrentExecutions;
  const resolved = (n: number | undefined): n is number => n !== undefined && !Token.isUnresolved(n);
  if (resolved(reserved) && (!Number.isInteger(reserved) || reserved < 1)) {
    invalid(
      { prop: `${prefix}.reservedConcurrentExecutions`, scope },
      String(reserved),
      'reserved concurrency caps the function; 0 would throttle every invocation, so the function would never run',
      { expected: 'a whole number of at least 1, or leave it unset (unreserved)', propExample: '50' },
    );
  }
  if (provisioned === undefined) return;
  const setting = { prop: `${prefix}.provisionedConcurrentExecutions`, scope };
  if (!provisionedOffered) {
    invalid(
      setting,
      String(provisioned),
      'provisioned concurrency is put on the `live` alias the HTTP API invokes, which only the predict and registry functions have; here it would be ignored',
      { expected: 'nothing (leave it unset)', propExample: 'undefined' },
    );
  }
  if (!resolved(provisioned)) return;
  if (!Number.isInteger(provisioned) || provisioned < 0) {
    invalid(setting, String(provisioned), 'provisioned concurrency is a number of execution environments', {
      expected: 'a whole number of at least 0',
      propExample: '2',
    });
  }
  if (resolved(reserved) && provisioned > reserved) {
    invalid(
      setting,
      String(provisioned),
      `it exceeds ${prefix}.reservedConcurrentExecutions (${reserved}): Lambda refuses provisioned concurrency above the reserved, and the deployment would fail half-way`,
      { expected: `at most ${reserved}, or raise the reserved concurrency`, propExample: String(reserved) },
    );
  }
}

/**
 * The HTTP API stage's throttling: a steady rate (requests per second) above 0 and a burst of at least 1 whole
 * request; 0 would answer every request 429, a negative value fails the deployment. Unresolved tokens pass.
 */
export function checkThrottling(
  rate: number,
  burst: number,
  scope: IConstruct,
  props: { readonly rate: string; readonly burst: string },
): void {
  if (!Token.isUnresolved(rate) && (!Number.isFinite(rate) || rate <= 0)) {
    invalid(
      { prop: props.rate, scope },
      String(rate),
      'at 0 requests per second the API would answer every request 429',
      {
        expected: 'a number of requests per second above 0',
        propExample: '100',
      },
    );
  }
  if (!Token.isUnresolved(burst) && (!Number.isInteger(burst) || burst < 1)) {
    invalid(
      { prop: props.burst, scope },
      String(burst),
      'the burst is a whole number of requests the stage takes at once; below 1 the API would answer every request 429',
      {
        expected: 'a whole number of at least 1',
        propExample: '200',
      },
    );
  }
}

/** Two alarm sets for one `model@alias`: each alias is alarmed once. */
export function duplicateAlias(key: string, setting: Setting): never {
  throw new MaasValidationError(
    setting,
    `invalid ${settingName(setting)}: the alarms of ${key} exist already. Alarm each alias once (one entry per model and alias, or one alarmsFor call).`,
  );
}

/**
 * The period of a metric the functions emit: whole minutes (their EMF metrics have standard, one-minute
 * resolution, so a shorter period shows nothing more). Unresolved tokens pass.
 */
export function checkMetricPeriod(period: Duration, setting: Setting): Duration {
  if (period.isUnresolved()) return period;
  const seconds = period.toMilliseconds() / 1000;
  if (!Number.isInteger(seconds / 60) || seconds < 60) {
    invalid(
      setting,
      period.toHumanString(),
      "the service's metrics have one-minute resolution, so a period is a whole number of minutes",
      { expected: 'a whole number of minutes, at least 1', propExample: 'Duration.minutes(1)' },
    );
  }
  return period;
}

/**
 * The removal policy of the data (the model bucket, the registry table): RETAIN, RETAIN_ON_UPDATE_OR_DELETE or
 * DESTROY. SNAPSHOT is refused: neither S3 buckets nor DynamoDB tables support a `Snapshot` DeletionPolicy, so the
 * template would fail at deploy time (or CDK would ignore the policy with a warning and delete the data).
 */
export function checkDataRemovalPolicy(policy: RemovalPolicy, setting: Setting): RemovalPolicy {
  const allowed: readonly RemovalPolicy[] = [
    RemovalPolicy.RETAIN,
    RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    RemovalPolicy.DESTROY,
  ];
  if (!allowed.includes(policy)) {
    invalid(
      setting,
      String(policy),
      "an S3 bucket and a DynamoDB table are kept or deleted with the stack; CloudFormation has no snapshot of either (DeletionPolicy 'Snapshot' is for databases and volumes)",
      {
        expected:
          'RemovalPolicy.RETAIN (the default), RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE or RemovalPolicy.DESTROY',
        propExample: 'RemovalPolicy.RETAIN',
      },
    );
  }
  return policy;
}

function isHttpsUrl(s: string): boolean {
  try {
    return new URL(s).protocol === 'https:';
  } catch {
    return false;
  }
}
