export * from './attach-listener.js';
export * from './attach-server.js';
export * from './config-schema.js';
export * from './errors.js';
export * from './vcpu-pages.js';
