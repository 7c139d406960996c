import { Command, CommanderError } from "commander";
import { CtlError } from "./client";
import { registerCompletion } from "./commands/completion";
import { registerEvents } from "./commands/events";
import { registerMachine } from "./commands/machine";
import { registerSystem } from "./commands/system";
import { registerService } from "./commands/service";
import { registerNode } from "./commands/node";
import { registerStack } from "./commands/stack";
import { registerSecrets } from "./commands/secret";
import { registerNetwork } from "./commands/network";
import { exitWhenFlushed } from "./output";

export { exitWhenFlushed };

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require("../package.json") as { version: string };

export function buildProgram(): Command {
  const program = new Command("ctl")
    .description(
      "Flotilla: create machines, point docker at them, and keep services running across them.\n" +
        "Reads the API URL and token from $FLOTILLA_URL/$FLOTILLA_TOKEN or ~/.config/flotilla/config.json.",
    )
    .version(version)
    .showHelpAfterError()
    // Lets `ctl service create ... IMAGE CMD -f -p 80` pass CMD's flags through, as docker does.
    .enablePositionalOptions();
  registerSystem(program);
  registerEvents(program);
  registerMachine(program);
  registerService(program);
  registerNode(program);
  registerNetwork(program);
  registerStack(program);
  registerSecrets(program);
  registerCompletion(program);
  return program;
}

export async function run(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof CtlError) {
      process.stderr.write(`ctl: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

// Run directly (tsx src/main.ts in tests); bin/ctl.js calls run() itself.
if (require.main === module) {
  void run(process.argv.slice(2)).then(exitWhenFlushed);
}
