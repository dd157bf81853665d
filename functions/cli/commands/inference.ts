/** `maas predict`: one inference request, built from rows with the model's metadata when needed. */
import { type Command, Option } from 'commander';
import { apiCall } from '../client';
import { type CliContext, EXIT } from '../context';
import { formatPrediction } from '../format';
import { type InputSpec, isInferenceRequest, modelPath, readInput, toInferenceRequest } from '../input';

/** Defines `maas predict` on `program`. */
export function inferenceCommands(program: Command, ctx: CliContext): void {
  program
    .command('predict')
    .description('run inference: rows for a one-input model, {"<input>": rows}, or a full OIP request')
    .argument('<model>', 'name, name@version or name@alias (default alias prod)')
    .addOption(new Option('--input <json|@file|file>', 'the input').makeOptionMandatory())
    .action(
      ctx.action(async (spec: string, opts: { input: string }) => {
        const target = modelPath(spec);
        const input = readInput(opts.input);
        const c = ctx.client();
        let request: Record<string, unknown>;
        if (isInferenceRequest(input)) {
          request = input;
        } else {
          const meta = await c.send<{ inputs: InputSpec[] }>(apiCall('modelMetadata', target));
          request = toInferenceRequest(input, meta.inputs);
        }
        ctx.print(await c.send(apiCall('modelInfer', target), request), formatPrediction);
        return EXIT.ok;
      }),
    );
}
