// The injection token of the control plane's clock (libs/core Clock): the system clock in
// production; tests may provide another.
export const CLOCK = Symbol("CLOCK");
