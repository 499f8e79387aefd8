// Making many holds through the API before a measured phase (payments, seat-expiry): for a slice
// of planned holds, first every fan's queue token, then every hold, `batch` requests at a time in
// one parallel http.batch. The runner starts the server with an admission rate far above the
// crowd, so by the time a hold is sent its token is ACTIVE; one answered QUEUE_NOT_ACTIVE polls
// queueStatus (as a fan's page would) and tries again.
//
//   import { makeHolds } from './lib/holds.js';
//   const made = makeHolds(items, { batch: 10, deadline, jwtOf, onError });
//   // items: [{ userId, concertId, scheduleId, seatIds: [...] }]; each made one gets .token and
//   // .reservationId; made = those that got a hold.
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { errorCode, gqlBatch } from './graphql.js';
import { GRAPHQL_URL } from './config.js';
import { ENTER, HOLD_SEATS, STATUS } from './operations.js';

export const prepared = new Counter('prepare_holds');
export const prepFailed = new Counter('prepare_failed');
export const prepHoldMs = new Trend('prepare_hold_ms', true);

// Errors after which the same request is simply tried again (a lost answer may have held it: the
// retry then says HOLD_ALREADY_EXISTS or SEAT_UNAVAILABLE and that hold is left out).
const RETRY = ['QUEUE_NOT_ACTIVE', 'BUSY', 'UNAVAILABLE', 'QUEUE_UNAVAILABLE', 'TIMEOUT', 'NETWORK'];

// Thresholds that make the prepare phase's numbers show up in its exported summary.
export const PREPARE_THRESHOLDS = {
  prepare_holds: ['count>=0'],
  prepare_failed: ['count>=0'],
  prepare_hold_ms: ['max>=0'],
  graphql_failed: ['rate>=0'],
  'http_req_duration{op:enterQueue}': ['max>=0'],
  'http_req_duration{op:holdSeats}': ['max>=0'],
  'http_reqs{op:enterQueue}': ['count>=0'],
  'http_reqs{op:queueStatus}': ['count>=0'],
  'http_reqs{op:holdSeats}': ['count>=0'],
};

export function makeHolds(items, { batch = 10, deadline = Infinity, jwtOf, onError = () => {}, onBatch = () => {} }) {
  // Tokens.
  for (let start = 0; start < items.length && Date.now() < deadline; start += batch) {
    let pending = items.slice(start, start + batch);
    for (let attempt = 0; pending.length > 0 && attempt < 5; attempt++) {
      const results = gqlBatch(GRAPHQL_URL, pending.map((h) => ({
        query: ENTER, variables: { c: h.concertId }, token: jwtOf(h.userId), name: 'enterQueue',
      })));
      const retry = [];
      results.forEach((r, i) => {
        const h = pending[i];
        const d = !r.errors && r.data && r.data.enterQueue;
        if (d && d.token && (d.status === 'WAITING' || d.status === 'ACTIVE')) h.token = d.token;
        else {
          onError(`enterQueue user=${h.userId} concert=${h.concertId}`, r);
          retry.push(h);
        }
      });
      pending = retry;
      if (pending.length > 0) sleep(0.5);
    }
    for (const h of pending) prepFailed.add(1, { op: 'enterQueue' });
  }

  // Holds.
  const made = [];
  const withToken = items.filter((h) => h.token);
  for (let start = 0; start < withToken.length && Date.now() < deadline; start += batch) {
    let pending = withToken.slice(start, start + batch);
    const done = [];
    for (let attempt = 0; pending.length > 0 && attempt < 5; attempt++) {
      const results = gqlBatch(GRAPHQL_URL, pending.map((h) => ({
        query: HOLD_SEATS, variables: { s: h.scheduleId, seats: h.seatIds }, token: jwtOf(h.userId),
        queueToken: h.token, name: 'holdSeats',
      })));
      const retry = [];
      results.forEach((r, i) => {
        const h = pending[i];
        prepHoldMs.add(r.res.timings.duration);
        const d = !r.errors && r.data && r.data.holdSeats;
        if (d && d.id) {
          h.reservationId = d.id;
          h.expiresAt = d.expiresAt;
          done.push(h);
          prepared.add(1);
          return;
        }
        const code = errorCode(r);
        if (code !== 'QUEUE_NOT_ACTIVE') onError(`holdSeats user=${h.userId} schedule=${h.scheduleId} seats=${h.seatIds}`, r);
        if (RETRY.indexOf(code) >= 0) retry.push(h);
        else prepFailed.add(1, { op: 'holdSeats', code });
      });
      pending = retry;
      if (pending.length > 0) {
        sleep(0.5);
        gqlBatch(GRAPHQL_URL, pending.map((h) => ({
          query: STATUS, variables: { t: h.token }, token: jwtOf(h.userId), name: 'queueStatus',
        })));
      }
    }
    for (const h of pending) prepFailed.add(1, { op: 'holdSeats', code: 'GAVE_UP' });
    if (done.length > 0) onBatch(done);
    made.push(...done);
  }
  return made;
}
