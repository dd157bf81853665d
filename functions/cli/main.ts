/** Entry of the `maas` command (bin/maas.js, `npm start` = `maas dev`). */
import { run } from './program';

const code = await run(process.argv);
// Exit explicitly: the dev server's children are stopped by now, and nothing else may keep the process.
process.exit(code);
