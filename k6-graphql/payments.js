// Scenario 3 of the load-test plan (docs/load-test-plan.md, "Concurrent payments"): RATE payment
// requests per second (1,000) for DURATION (5 min = 300,000 payments), by fans with enough points,
// each paying a reservation held beforehand. The offer is kept above what this machine can serve:
// the payments beyond capacity must be refused at once with BUSY and extensions.retryAfterMs, not
// left to time out.
//
// Run it through `scripts/load payments [--users N] [--rate R] [--duration 5m]`, which seeds the
// database, runs the two phases below against one release server, checks the database afterwards
// (balances = ledgers, nothing sold twice, one payment per confirmed reservation, ...) and writes
// docs/results/payments.{md,json}.
//
// Two phases, two k6 runs of this script (PHASE=prepare, then PHASE=pay):
//
// 1. PHASE=prepare, before the measured phase: every hold to be paid is made through the API, the
//    way a fan makes it. PREPARE_HOLDS holds (default PAYMENTS = RATE x DURATION) are made; one
//    fan has one live hold per schedule and one queue token per concert (paying ends it), so the
//    database is seeded with CONCERTS = ceil(PREPARE_HOLDS / USERS) concerts of one schedule each,
//    SEATS_PER_SCHEDULE = USERS seats per schedule and USERS fans; hold k (0-based) is fan
//    u = k % USERS + 1 in concert c = floor(k / USERS) + 1, on seat number u of that concert's
//    schedule (seat id (c - 1) x SEATS_PER_SCHEDULE + u; the runner checks that formula against
//    the seeded rows).
//    For each hold: enterQueue(c) (the server admits everyone within a tick), then
//    holdSeats(schedule c, [that seat]) with that token (queueStatus, and again, only if it
//    answers QUEUE_NOT_ACTIVE). PREP_VUS VUs each take a contiguous slice of the holds: first
//    all of its tokens, then all of its holds, PREP_BATCH at a time in one parallel http.batch.
//    Each VU prints what it made as `PREPARED [[k, reservationId, queueToken], ...]` lines on
//    the console; the runner collects them (k6 --console-output) into one JSON file, ordered by
//    k. Setup data would be copied into every VU of the measured phase (300,000 entries x
//    hundreds of VUs); a SharedArray is not.
//    Holds and ACTIVE tokens must outlive both phases: the runner sets HOLD_TTL_SECONDS and
//    QUEUE_ACTIVE_TTL_SECONDS to an hour.
//
// 2. PHASE=pay, measured: constant-arrival-rate, RATE iterations per second for DURATION, each one
//    pay(reservationId, idempotencyKey) with the fan's JWT and their ACTIVE Queue-Token. Iteration
//    k (exec.scenario.iterationInTest) pays prepared hold k, so a fan's payments are USERS
//    iterations apart (30 s at 1,000/s with 30,000 fans): no fan pays two holds at once, as no
//    real fan does. The idempotency key is unique per hold and run. Payments are read from
//    PREPARED (a path, a JSON array [[k, reservationId, token], ...]) through a SharedArray.
//    A payment answered BUSY is refused, not failed: by default (BUSY_RETRIES=0) the iteration
//    ends there, so the server sees exactly RATE new payments a second and what it cannot take
//    shows as BUSY answers; with BUSY_RETRIES=N the fan waits retryAfterMs and sends the same
//    payment (same key) again, up to N times, on top of the offered rate.
//
// Env (both): BASE_URL, USERS (30000), PAYMENTS (RATE x DURATION in seconds), PREPARE_HOLDS
//      (PAYMENTS: fewer when the machine cannot start that many payments anyway; iteration k
//      beyond them pays nothing and counts payments_no_hold_left), CONCERTS (PREPARE_HOLDS /
//      USERS, rounded up), SEATS_PER_SCHEDULE (USERS), USER_ID_BASE (0: fans are users 1..USERS,
//      who must exist), JWT_SECRET, ERROR_LOG_PER_VU (3).
// Env (prepare): PREP_VUS (20), PREP_BATCH (10), PREP_MAX_SECONDS (900).
// Env (pay): PREPARED (file), RATE (1000), DURATION (300 s; k6 duration syntax too), PRE_VUS (500),
//      MAX_VUS (1000: at most this many payments in flight; when the server is slower than RATE,
//      k6 drops the iterations it has no free VU for and counts them in dropped_iterations),
//      BUSY_RETRIES (0), BUSY_FALLBACK_MS (250: the wait after a BUSY without retryAfterMs),
//      RUN_ID (idempotency-key prefix; default the start time).
//
// Thresholds (pay phase; plan, scenario 3 and success criteria, issue 12's targets):
//   http_req_duration{op:pay} p(95) < 500 ms, p(99) < 1,000 ms   every pay request, BUSY included
//   payment_busy_ms p(99) < 50 ms        a refusal is fast: the latency of the BUSY answers
//   payment_succeeded rate > 99.5 %      of the payments the server took on (final answer not
//                                        BUSY), a receipt with amount and balanceAfter came back
//   payment_real_failed rate < 0.5 %     error rate over every pay request not answered BUSY (no
//                                        error code is an expected outcome here)
//   graphql_errors{code:TIMEOUT} count < 1   nothing beyond capacity waits until it times out
// Goals the runner's report adds: payments completed / s >= 90 % of the capacity measured in the
// same run (its best steady 10 s window), completed / s against RATE, outbox backlog < 1,000,
// deadlocks < 10 (pg_stat_database), every SQL consistency check = expected, payments in the
// database = receipts k6 got. Every payment that did not complete is printed as
// `PAYFAIL <reservationId> <code>` (BUSY included), so the runner can count those the database
// nevertheless shows as paid (e.g. answered TIMEOUT after commit; a BUSY one never should be).
// Prepare phase thresholds only make its summary show hold latency and errors; the runner goes on
// with the holds that were prepared (and stops only when there is none): a payment iteration
// without a hold counts payments_no_hold_left, which the report flags.
import exec from 'k6/execution';
import { sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter, Rate, Trend } from 'k6/metrics';
import { errorBreakdownThresholds, errorCode, gql, retryAfterMs } from './lib/graphql.js';
import { PREPARE_THRESHOLDS, makeHolds } from './lib/holds.js';
import { userToken } from './lib/jwt.js';
import { PAY } from './lib/operations.js';
import { BASE_URL, latencyMs } from './lib/config.js';
import { busyDelayMs, isBusy } from './lib/queue.js';

const PHASE = __ENV.PHASE || 'pay';
const URL = `${BASE_URL}/graphql`;
const USERS = parseInt(__ENV.USERS || '30000', 10);
const RATE = parseInt(__ENV.RATE || '1000', 10);
const DURATION_S = parseDuration(__ENV.DURATION || '300');
const PAYMENTS = parseInt(__ENV.PAYMENTS || String(RATE * DURATION_S), 10);
// Holds the prepare phase makes: PAYMENTS, unless fewer are asked for (see the runner).
const PREPARE_HOLDS = parseInt(__ENV.PREPARE_HOLDS || String(PAYMENTS), 10);
const CONCERTS = parseInt(__ENV.CONCERTS || String(Math.ceil(PREPARE_HOLDS / USERS)), 10);
const SEATS_PER_SCHEDULE = parseInt(__ENV.SEATS_PER_SCHEDULE || String(USERS), 10);
const USER_ID_BASE = parseInt(__ENV.USER_ID_BASE || '0', 10);
const ERROR_LOG_PER_VU = parseInt(__ENV.ERROR_LOG_PER_VU || '3', 10);
const PREP_VUS = Math.max(1, Math.min(parseInt(__ENV.PREP_VUS || '20', 10), PREPARE_HOLDS));
const PREP_BATCH = Math.max(1, parseInt(__ENV.PREP_BATCH || '10', 10));
const PREP_MAX_SECONDS = parseFloat(__ENV.PREP_MAX_SECONDS || '900');
const PRE_VUS = parseInt(__ENV.PRE_VUS || '500', 10);
const MAX_VUS = parseInt(__ENV.MAX_VUS || '1000', 10);
const RUN_ID = __ENV.RUN_ID || String(Date.now());
const BUSY_RETRIES = Math.max(0, parseInt(__ENV.BUSY_RETRIES || '0', 10));
if (PHASE !== 'prepare' && PHASE !== 'pay') throw new Error(`PHASE must be prepare or pay, not ${PHASE}`);
if (CONCERTS * USERS < PREPARE_HOLDS) throw new Error(`${CONCERTS} concerts x ${USERS} fans < ${PREPARE_HOLDS} holds`);
if (SEATS_PER_SCHEDULE < USERS) throw new Error('SEATS_PER_SCHEDULE must be at least USERS');

function parseDuration(v) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(v).trim());
  if (!m) throw new Error(`bad DURATION ${v}`);
  const n = parseFloat(m[1]);
  return Math.round({ ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2] || 's']);
}

// Hold k: which fan, concert, schedule and seat.
function holdPlan(k) {
  const u = (k % USERS) + 1;
  const c = Math.floor(k / USERS) + 1;
  return { k, userId: USER_ID_BASE + u, concertId: String(c), scheduleId: String(c),
    seatId: String((c - 1) * SEATS_PER_SCHEDULE + u) };
}

// pay
const paymentsOk = new Counter('payments_ok');
const paymentSucceeded = new Rate('payment_succeeded');
const paymentMs = new Trend('payment_ms', true);
const paymentFailedMs = new Trend('payment_failed_ms', true);
const noHoldLeft = new Counter('payments_no_hold_left');
const badReceipt = new Counter('payment_bad_receipt');
const realFailed = new Rate('payment_real_failed');
// BUSY: every such answer, its latency, those without retryAfterMs, the payments whose last
// answer was BUSY (refused, not completed), and the retries sent after one (BUSY_RETRIES).
const busy = new Counter('payments_busy');
const busyMs = new Trend('payment_busy_ms', true);
const busyNoHint = new Counter('payments_busy_without_hint');
const refusedBusy = new Counter('payments_refused_busy');
const busyRetries = new Counter('payment_busy_retries');
// Seconds since the start when each payment completed (throughput over time, by window).
const WINDOW_SECONDS = 10;
const windowTag = (ms) => `w${String(Math.floor(ms / 1000 / WINDOW_SECONDS)).padStart(2, '0')}`;

function prepareOptions() {
  return {
    scenarios: {
      prepare: {
        executor: 'per-vu-iterations',
        vus: PREP_VUS,
        iterations: 1,
        maxDuration: `${Math.ceil(PREP_MAX_SECONDS)}s`,
        gracefulStop: '10s',
      },
    },
    batch: PREP_BATCH,
    batchPerHost: PREP_BATCH,
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
    thresholds: Object.assign(
      {},
      PREPARE_THRESHOLDS,
      errorBreakdownThresholds(['enterQueue', 'queueStatus', 'holdSeats']),
    ),
  };
}

function payOptions() {
  const windows = {};
  for (let w = 0; w <= Math.ceil(DURATION_S / WINDOW_SECONDS) + 6; w++) {
    const tag = windowTag(w * WINDOW_SECONDS * 1000);
    windows[`http_req_duration{op:pay,window:${tag}}`] = ['max>=0'];
    windows[`payment_succeeded{window:${tag}}`] = ['rate>=0'];
    windows[`payments_ok{window:${tag}}`] = ['count>=0'];
    windows[`payments_busy{window:${tag}}`] = ['count>=0'];
  }
  return {
    scenarios: {
      pay: {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: `${DURATION_S}s`,
        preAllocatedVUs: Math.min(PRE_VUS, MAX_VUS),
        maxVUs: MAX_VUS,
        gracefulStop: '30s',
      },
    },
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
    thresholds: Object.assign(
      {
        'http_req_duration{op:pay}': [`p(95)<${latencyMs(500)}`, `p(99)<${latencyMs(1000)}`],
        payment_busy_ms: [`p(99)<${latencyMs(50)}`],
        payment_succeeded: ['rate>0.995'],
        payment_real_failed: ['rate<0.005'],
        graphql_failed: ['rate>=0'],
        payments_ok: ['count>=0'],
        payments_busy: ['count>=0'],
        payments_busy_without_hint: ['count>=0'],
        payments_refused_busy: ['count>=0'],
        payment_busy_retries: ['count>=0'],
        payment_ms: ['max>=0'],
        payment_failed_ms: ['max>=0'],
        payments_no_hold_left: ['count>=0'],
        payment_bad_receipt: ['count>=0'],
        dropped_iterations: ['count>=0'],
        vus: ['value>=0'],
        vus_max: ['value>=0'],
        'http_reqs{op:pay}': ['count>=0'],
      },
      errorBreakdownThresholds(['pay']),
      windows,
      // After the breakdown (which lists every code with `count>=0`): this one is judged.
      { 'graphql_errors{code:TIMEOUT}': ['count<1'] },
    ),
  };
}

export const options = PHASE === 'prepare' ? prepareOptions() : payOptions();

// Pay phase: the prepared holds, shared by all VUs.
const holds = PHASE === 'pay'
  ? new SharedArray('holds', () => {
    if (!__ENV.PREPARED) throw new Error('PREPARED (the file of the prepare phase) is needed');
    return JSON.parse(open(__ENV.PREPARED));
  })
  : null;

export function setup() {
  if (PHASE === 'pay' && holds.length < PAYMENTS) {
    console.warn(`${holds.length} prepared holds for up to ${PAYMENTS} payments: iterations past the ` +
      'last hold pay nothing (payments_no_hold_left)');
  }
  return { t0: Date.now() };
}

const logState = { logged: 0 };
function logError(what, result) {
  if (logState.logged >= ERROR_LOG_PER_VU) return;
  logState.logged += 1;
  const body = result.res.body ? String(result.res.body).slice(0, 400) : '';
  console.warn(`graphql error: ${what} status=${result.res.status} code=${errorCode(result)} body=${body}`);
}

// ---- prepare: make holds [first, last) of the plan through the API (lib/holds.js: every queue
// token of the slice, then every hold, PREP_BATCH at a time) and print what was made.
function prepare() {
  const vu = exec.vu.idInTest;
  const per = Math.ceil(PREPARE_HOLDS / PREP_VUS);
  const first = (vu - 1) * per;
  const last = Math.min(PREPARE_HOLDS, first + per);
  const jwts = {};
  const jwtOf = (userId) => jwts[userId] || (jwts[userId] = userToken(userId, { ttlSeconds: 4 * 3600 }));
  const items = [];
  for (let k = first; k < last; k++) {
    const h = holdPlan(k);
    items.push(Object.assign(h, { seatIds: [h.seatId] }));
  }
  makeHolds(items, {
    batch: PREP_BATCH,
    deadline: Date.now() + PREP_MAX_SECONDS * 1000,
    jwtOf,
    onError: logError,
    onBatch: (done) => console.log(`PREPARED ${JSON.stringify(done.map((h) => [h.k, h.reservationId, h.token]))}`),
  });
}

// ---- pay: iteration k pays prepared hold k.
const jwtCache = {};
function pay(data) {
  const k = exec.scenario.iterationInTest;
  // constant-arrival-rate may start one iteration more than RATE x DURATION.
  if (k >= PAYMENTS) return;
  if (k >= holds.length) {
    noHoldLeft.add(1);
    return;
  }
  const [idx, reservationId, token] = holds[k];
  const plan = holdPlan(idx);
  const jwt = jwtCache[plan.userId] || (jwtCache[plan.userId] = userToken(plan.userId, { ttlSeconds: 4 * 3600 }));
  const key = `load-${RUN_ID}-${reservationId}`;
  let r;
  let tags;
  for (let tries = 0; ; tries++) {
    // The window of the last send: payments_ok and payment_succeeded count there.
    tags = { window: windowTag(Date.now() - data.t0) };
    r = gql(URL, PAY, { r: reservationId, k: key }, { token: jwt, queueToken: token, name: 'pay', tags });
    if (!isBusy(r)) break;
    busy.add(1, tags);
    busyMs.add(r.res.timings.duration);
    if (retryAfterMs(r) === null) busyNoHint.add(1);
    if (tries >= BUSY_RETRIES) {
      refusedBusy.add(1);
      console.log(`PAYFAIL ${reservationId} BUSY`);
      return;
    }
    busyRetries.add(1);
    sleep(busyDelayMs(r) / 1000);
  }
  const d = !r.errors && r.data && r.data.pay;
  const ok = !!(d && d.paymentId && String(d.reservationId) === String(reservationId) &&
    d.amount > 0 && d.balanceAfter >= 0);
  realFailed.add(!ok);
  paymentSucceeded.add(ok, tags);
  if (ok) {
    paymentsOk.add(1, tags);
    paymentMs.add(r.res.timings.duration);
  } else {
    paymentFailedMs.add(r.res.timings.duration);
    if (d) badReceipt.add(1);
    // Every failed payment, for the runner's SQL check of failures that were nevertheless charged.
    console.log(`PAYFAIL ${reservationId} ${d ? 'BAD_RECEIPT' : errorCode(r)}`);
    logError(`pay user=${plan.userId} reservation=${reservationId} token=${token}`, r);
  }
}

export default function (data) {
  if (PHASE === 'prepare') prepare();
  else pay(data);
}
