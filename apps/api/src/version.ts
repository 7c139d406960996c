// Read once; the API reports it in health and the OpenAPI document.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const VERSION: string = (require("../package.json") as { version: string }).version;
