/** Entry of the `maas` command (bin/maas.js, `npm start` = `maas dev`). */
import { setProcessEnvDefaults } from '../config/environment';
import { flushStdout } from './context';
import { run } from './program';

// The project supports Node 20+ (package.json engines); the SDK's notice about its own future Node 22 floor
// would otherwise interleave with every command's output. An explicit setting wins.
setProcessEnvDefaults({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });

process.exitCode = await run(process.argv);
// What a slower reader of a pipe has not taken yet is still queued: exiting now would lose it.
await flushStdout().catch(() => {});
// Exit explicitly (with process.exitCode): the dev server's children are stopped by now, and nothing else may
// keep the process.
process.exit();
