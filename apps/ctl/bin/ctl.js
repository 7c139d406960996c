#!/usr/bin/env node
// Built by `npm run build`; the set-up command puts this file on the PATH as `ctl`.
const ctl = require("../dist/main.js");
ctl.run(process.argv.slice(2)).then(ctl.exitWhenFlushed);
