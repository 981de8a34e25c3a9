/**
 * Errors raised by the metrics/ layer. Callers branch on `code`, never on message text.
 * Every one of them is a caller bug or an environment problem found at the boundary (construction,
 * the first use of a label value, `listen()`); at scrape time only a rendering that cannot be
 * trusted fails, and the scrape answers 500.
 */
import { errorGuard, SeawallError } from '../errors/index.js';

export type MetricsErrorCode =
  /** A constructor or server option is out of range (non-positive TTL, port outside 0–65535 …). */
  | 'SEAWALL_METRICS_INVALID_OPTION'
  /** A label value is outside its closed set, or an open label value is empty, too long or not text. */
  | 'SEAWALL_METRICS_INVALID_LABEL'
  /** A recorded number is not allowed (negative count, non-finite latency, fractional page count). */
  | 'SEAWALL_METRICS_INVALID_VALUE'
  /** `sessionClosed()` without a matching `sessionOpened()`: the session gauge would go negative. */
  | 'SEAWALL_METRICS_UNBALANCED_SESSION'
  /** The /metrics endpoint could not bind its address; `detail.errno` holds the system code. */
  | 'SEAWALL_METRICS_LISTEN_FAILED'
  /** `listen()` on a server that is already listening or was closed. */
  | 'SEAWALL_METRICS_SERVER_STATE'
  /**
   * A rendering could not be made (sliced-render.ts): prom-client's text for part of a family did
   * not begin with the family's header, or a per-VM family was being read by another rendering.
   */
  | 'SEAWALL_METRICS_RENDER_FAILED';

export class MetricsError extends SeawallError<MetricsErrorCode> {
  override readonly name = 'MetricsError';
}

export const isMetricsError = errorGuard(MetricsError);
