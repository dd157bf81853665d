/** Building the stack for Template assertions (bundling skipped) and reading its IAM policies. */
import { App, type Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { MaasStack, type MaasStackProps } from '../../infra/maas-stack';

/** One statement of an IAM policy document as synthesized. */
export type Statement = {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

/** App context that skips bundling the functions (Template assertions only). */
export const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

/** A value or list of values (as CloudFormation writes an Action or a Resource) as a list. */
export const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** A stack as the app builds it (cdk-nag AwsSolutions attached), with extra props. */
export function buildStack(
  id: string,
  extra: Partial<MaasStackProps> = {},
): { stack: MaasStack; template: Template } {
  const app = new App({ context: NO_BUNDLING });
  const stack = new MaasStack(app, id, extra);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { stack, template: Template.fromStack(stack) };
}

/** The logical id of a construct's default CloudFormation resource in `s`. */
export const logicalId = (s: Stack, c: { node: { defaultChild?: unknown } }) =>
  s.resolve((c.node.defaultChild as { logicalId: string }).logicalId) as string;

/** The statements of every policy attached to a role. */
export function statementsOfRole(t: Template, roleId: string): Statement[] {
  const policies = t.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) },
  });
  return Object.values(policies).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}
