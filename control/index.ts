export { type Authorization, authorize } from './authorize.js';
export {
  CONTROL_TIMEOUT_MS,
  type ControlClientOptions,
  controlRequest,
  controlTimeoutMs,
  RELOAD_TIMEOUT_MS,
} from './client.js';
export {
  CONTROL_COMMANDS,
  CommandArgs,
  type ControlCommand,
  type ControlContext,
  ControlRequest,
  type ControlResults,
  MAX_VM_ID_LENGTH,
  MUTATING_COMMANDS,
  type ReloadResult,
  type SessionSummary,
  STATUS_MAX_SESSIONS,
  type StatusResult,
  type VmView,
  type WhyCondition,
  type WhyEntry,
  type WhyOutcome,
  type WhyResult,
} from './commands.js';
export { ControlError, type ControlErrorCode, isControlError } from './errors.js';
export { CONTROL_SOCKET_MODE, type ControlListenTarget } from './listen.js';
export { ControlServer, type ControlServerOptions } from './server.js';
export { type ServiceParts, serviceControlContext } from './service-context.js';
