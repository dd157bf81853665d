/**
 * The rollout controller (Lambda): runs `tick` on EventBridge's schedule (`Scheduled Event`), and on CloudWatch's
 * `CloudWatch Alarm State Change` (source `aws.cloudwatch`) rolls back at once the rollouts naming an alarm that
 * went to ALARM, then ticks. Any other invocation (a manual one) ticks. Answers what it did.
 */
import { PowertoolsLogger } from '../adapters/powertools-logger';
import { onAlarm, type RolloutDeps, type TickSummary, tick } from '../app/rollout';
import { EnvironmentVariables } from '../config/environment';
import { SERVICE_NAMES } from '../contract/observability';
import type { Logger } from '../ports/logger';
import { rolloutDepsFromConfig } from './rollout-deps';

/** The detail-type of EventBridge's scheduled events. */
export const SCHEDULED_EVENT = 'Scheduled Event';
/** The source and detail-type of CloudWatch's alarm state changes. */
export const ALARM_EVENT = { source: 'aws.cloudwatch', detailType: 'CloudWatch Alarm State Change' } as const;

/** The part of an EventBridge event the controller reads. */
export interface ControllerEvent {
  readonly source?: string;
  readonly 'detail-type'?: string;
  readonly detail?: {
    readonly alarmName?: string;
    readonly state?: { readonly value?: string };
  };
}

/** What one invocation did: the tick's summary, and the alarm it was told of. */
export interface ControllerResult extends TickSummary {
  readonly alarm?: {
    readonly name: string;
    readonly state: string;
    /** `name@alias` of the rollouts it rolled back. */
    readonly rolledBack: string[];
  };
}

/** The alarm an event tells of; undefined for other events. */
export function alarmOf(event: ControllerEvent): { name: string; state: string } | undefined {
  if (event.source !== ALARM_EVENT.source || event['detail-type'] !== ALARM_EVENT.detailType)
    return undefined;
  const name = event.detail?.alarmName;
  const state = event.detail?.state?.value;
  return typeof name === 'string' && typeof state === 'string' ? { name, state } : undefined;
}

/**
 * Builds the controller around injected dependencies (tests, the local service, Lambda); `report` receives one line
 * per invocation that changed something.
 */
export function createRolloutController(
  deps: RolloutDeps,
  report?: Pick<Logger, 'info'>,
): (event: ControllerEvent) => Promise<ControllerResult> {
  return async (event) => {
    const alarm = alarmOf(event);
    let rolledBack: string[] | undefined;
    if (alarm) {
      rolledBack = (await onAlarm(deps, alarm.name, alarm.state)).map((r) => `${r.name}@${r.alias}`);
    }
    const summary = await tick(deps);
    const result: ControllerResult = {
      ...summary,
      ...(alarm && rolledBack ? { alarm: { ...alarm, rolledBack } } : {}),
    };
    const changed =
      summary.advanced.length +
      summary.promoted.length +
      summary.rolledBack.length +
      summary.aborted.length +
      summary.reconciled.length +
      summary.failed.length +
      (rolledBack?.length ?? 0);
    if (changed > 0) report?.info('rollouts changed', { ...result });
    return result;
  };
}

const functionLogger = new PowertoolsLogger({ serviceName: SERVICE_NAMES.rolloutController });

function buildDefault(): (event: ControllerEvent) => Promise<ControllerResult> {
  try {
    const cfg = new EnvironmentVariables().rolloutControllerConfig();
    return createRolloutController(
      rolloutDepsFromConfig(cfg, { cloudWatch: true, logger: functionLogger }),
      functionLogger,
    );
  } catch (e) {
    // Missing configuration: importing the module (tests, tooling) must not throw; invocations fail.
    return async () => {
      functionLogger.error('rollout controller misconfigured', { error: (e as Error).message });
      throw e;
    };
  }
}

/** Lambda handler (EventBridge scheduled and CloudWatch alarm events). */
export const handler = buildDefault();
