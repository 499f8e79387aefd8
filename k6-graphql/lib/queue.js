// What a fan's client does with the answers of the waiting queue and of the booking path, as the
// server's contract describes them (README, "Identity and the waiting queue"):
//
//   pollAfterSeconds   QueueStatus field: how long to wait before asking queueStatus again
//                      (1-2 s while WAITING, longer when SOLD_OUT, null when EXPIRED). With
//                      POLL=hint (the default) a fan waits that long, or POLL_SECONDS when the
//                      answer has no hint; with POLL=fixed it polls every POLL_SECONDS whatever
//                      the hint says (the plan's "poll every 2 s").
//   SOLD_OUT           the concert has nothing left to sell: the status of a WAITING token
//                      (it keeps its place: the queue reopens in the same order when seats come
//                      back), the error code of enterQueue on such a concert, and a possible
//                      answer of holdSeats / holdBestAvailable. A business answer, not a failure.
//   BUSY               a database-bound mutation (hold, pay, cancel, charge) refused at once
//                      because the server is at capacity, with extensions.retryAfterMs: the
//                      client waits that long and sends the same request again. A fast honest
//                      refusal, counted apart from failures; a retried request that then
//                      succeeds is a success. Without a hint the client waits BUSY_FALLBACK_MS.
//
//   import { POLL_MODE, pollDelaySeconds, busyDelayMs, isSoldOut } from './lib/queue.js';
//
// Env: POLL (hint | fixed), BUSY_FALLBACK_MS (250).
import { errorCode, hasCode, retryAfterMs } from './graphql.js';
import { envInt, envStr } from './config.js';

export const SOLD_OUT = 'SOLD_OUT';
export const BUSY = 'BUSY';
export const POLL_MODE = envStr('POLL', 'hint');
if (POLL_MODE !== 'hint' && POLL_MODE !== 'fixed') throw new Error(`POLL must be hint or fixed, not ${POLL_MODE}`);
export const BUSY_FALLBACK_MS = envInt('BUSY_FALLBACK_MS', 250);

// The server's hint of a queue answer (seconds), or null when it gave none usable.
export function pollHint(status) {
  const hint = status && status.pollAfterSeconds;
  return typeof hint === 'number' && hint > 0 ? hint : null;
}

// Seconds a fan waits before its next queueStatus after the answer `status`.
export function pollDelaySeconds(status, fallbackSeconds, mode = POLL_MODE) {
  if (mode === 'fixed') return fallbackSeconds;
  const hint = pollHint(status);
  return hint === null ? fallbackSeconds : hint;
}

// The answer was a BUSY refusal (to be retried after busyDelayMs).
export function isBusy(result) {
  return errorCode(result) === BUSY;
}

// Milliseconds to wait after a BUSY answer: its retryAfterMs, or BUSY_FALLBACK_MS.
export function busyDelayMs(result) {
  const ms = retryAfterMs(result);
  return ms === null ? BUSY_FALLBACK_MS : ms;
}

// The answer says the concert is sold out (an error code; a queue status says it in `status`).
export function isSoldOut(result) {
  return hasCode(result, SOLD_OUT);
}
