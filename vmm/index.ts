export * from './attach-client.js';
export * from './errors.js';
export * from './event-mix.js';
export * from './fleet-processes.js';
export * from './latency.js';
export * from './plugin-client.js';
export * from './sample-events.js';
export * from './simulator.js';
