export * from './attach-wire.js';
export * from './constants.js';
export * from './decode.js';
export * from './directions.js';
export * from './encode.js';
export * from './errors.js';
export * from './event-checks.js';
export * from './frame-parser.js';
export type * from './messages.js';
