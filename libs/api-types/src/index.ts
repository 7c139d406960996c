// The REST API's response shapes, shared by ctl and the console.
export {};
