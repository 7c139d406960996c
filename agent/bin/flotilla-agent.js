#!/usr/bin/env node
// The agent's command: the compiled entry point (npm run build first).
require("../dist/main.js");
