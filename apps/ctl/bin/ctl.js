#!/usr/bin/env node
// Built by `npm run build`; the set-up command puts this file on the PATH as `ctl`.
require("../dist/main.js")
  .run(process.argv.slice(2))
  .then((code) => process.exit(code));
