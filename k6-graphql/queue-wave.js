// Scenario 2 of the load-test plan (docs/load-test-plan.md, "Queue activation wave"): USERS fans
// get a queue token at the same moment and poll their status until ACTIVE, either every
// POLL_SECONDS as the plan says (POLL=fixed) or when each answer's pollAfterSeconds says
// (POLL=hint, the default: what the product's clients do; POLL_SECONDS when an answer has none).
//
// Run it through `scripts/load queue-wave [--users N] [--poll hint|fixed]`, which starts a release
// server with the scenario's queue settings and writes docs/results/queue-wave.{md,json} (hint) or
// docs/results/queue-wave-fixed.{md,json} (fixed). By hand:
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e USERS=500 -e POLL=fixed k6-graphql/queue-wave.js
//
// Load model. One k6 VU per fan would be the literal model; measured on this 2-vCPU / 24 GB
// machine (k6 v1.1.0, 10,000 fans, same server): 10,000 VUs took 4.7 GB RSS, ~190 % CPU for
// several seconds just to initialise and ~90 % of a core while fans waited, CPU the server it
// shares the 2 cores with needs. 1,000 VUs x 10 fans: 1.1 GB, ~70 %. So by default each VU
// simulates USERS_PER_VU fans (10: 1,000 VUs for 10,000 fans): at the start every VU enters all
// of its fans at once (one http.batch, all in parallel on their own connections), then sends, in
// one parallel http.batch, the polls of all its fans that are due, and sleeps until the next one
// is. When a fan is due:
//   POLL=fixed  like a client's setInterval started when its token arrived: the first poll
//               POLL_SECONDS after the enter answer, each later one POLL_SECONDS after the
//               previous poll was sent (late polls are not caught up), so the server sees exactly
//               "USERS fans each polling every POLL_SECONDS" as long as a round takes less than
//               POLL_SECONDS, and fewer polls, never more, when it is slower. A VU's fans stay
//               together.
//   POLL=hint   pollAfterSeconds after the answer (1-2 s while WAITING, further back in the line
//               longer), so a VU's fans drift apart and the server sees the polling rate it asked
//               for.
// All VUs are initialised before the start and begin together (per-vu-iterations), so all fans
// enter in the same instant, as in the plan ("get tokens at once"). A fan whose enterQueue fails
// retries it POLL_SECONDS later; its activation time still counts from its first attempt.
// USERS_PER_VU=1 gives the literal one-VU-per-fan model.
//
// Env: BASE_URL (http://127.0.0.1:8080), USERS (10000), USERS_PER_VU (10), POLL (hint | fixed),
//      POLL_SECONDS (2), CONCERT_ID (1), USER_ID_BASE (1000000: fans are users BASE+1 ..
//      BASE+USERS), MAX_WAIT_SECONDS (300: a fan not ACTIVE by then gives up and counts as not
//      activated), JWT_SECRET (dev-secret-change-me), ERROR_LOG_PER_VU (2: error responses logged
//      per VU).
//
// Thresholds (plan, scenario 2 + success criteria):
//   queue_activation_seconds p(95) < 60       enter sent -> first ACTIVE seen, per fan
//   http_req_duration{op:queueStatus} p(99) < 200 ms
//   queue_real_failed rate < 0.5 %            HTTP != 200 or `errors` in the body, over the requests
//                                             not answered BUSY: a BUSY answer (the waiting room
//                                             refusing what it cannot serve now, with
//                                             extensions.retryAfterMs) is retried after that hint,
//                                             as a real client would, and counted apart
//                                             (queue_busy{op}, queue_busy_ms); graphql_failed still
//                                             counts every error answer, BUSY included
//   queue_users_not_activated count == 0      (integrity: every fan must get in; a fan who never
//                                              does has no activation time, which would flatter P95)
// Also recorded: queue_entered / queue_enter_done_seconds (entry throughput), queue_users_active
// and queue_active_at_seconds (time since start when each fan was seen ACTIVE: admissions/s and
// the 10 % -> 100 % ramp), queue_position_regressions (a WAITING fan's position went up),
// queue_expired_while_waiting, queue_sold_out (a SOLD_OUT answer: this concert is never sold
// out, so one is a fault), queue_enter_position and queue_enter_eta_seconds (place and
// estimatedWaitSeconds in the enterQueue answer), queue_eta_error_seconds (activation time minus
// that estimate), queue_poll_after_seconds (the hints given while WAITING) and
// queue_poll_hint_missing (WAITING answers without one).
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { errorBreakdownThresholds, errorCode, gqlBatch, isRealFailure } from './lib/graphql.js';
import { userToken } from './lib/jwt.js';
import { BASE_URL, latencyMs } from './lib/config.js';
import { POLL_MODE, busyDelayMs, isBusy, isSoldOut, pollDelaySeconds, pollHint } from './lib/queue.js';

const URL = `${BASE_URL}/graphql`;
const USERS = parseInt(__ENV.USERS || '10000', 10);
const USERS_PER_VU = Math.max(1, parseInt(__ENV.USERS_PER_VU || '10', 10));
const POLL_SECONDS = parseFloat(__ENV.POLL_SECONDS || '2');
const CONCERT_ID = __ENV.CONCERT_ID || '1';
const USER_ID_BASE = parseInt(__ENV.USER_ID_BASE || '1000000', 10);
const MAX_WAIT_SECONDS = parseFloat(__ENV.MAX_WAIT_SECONDS || '300');
const ERROR_LOG_PER_VU = parseInt(__ENV.ERROR_LOG_PER_VU || '2', 10);
const VUS = Math.ceil(USERS / USERS_PER_VU);
// Requests are also tagged `window` (w00 = the first 10 s after the start, w01 the next, ...,
// the last one holds the rest) so the report can show latency and errors over time.
const WINDOW_SECONDS = 10;
const WINDOWS = 18;
const windowTag = (ms) => `w${String(Math.min(Math.floor(ms / 1000 / WINDOW_SECONDS), WINDOWS)).padStart(2, '0')}`;
const windowThresholds = {};
for (let w = 0; w <= WINDOWS; w++) {
  const tag = windowTag(w * WINDOW_SECONDS * 1000);
  windowThresholds[`http_req_duration{op:queueStatus,window:${tag}}`] = ['max>=0'];
  windowThresholds[`graphql_failed{window:${tag}}`] = ['rate>=0'];
}

const ENTER = `mutation enterQueue($c: ID!) {
  enterQueue(concertId: $c) { token status position ahead estimatedWaitSeconds pollAfterSeconds }
}`;
const STATUS = `query queueStatus($t: String!) {
  queueStatus(token: $t) { status position estimatedWaitSeconds activeUntil pollAfterSeconds }
}`;

const activation = new Trend('queue_activation_seconds');
const realFailed = new Rate('queue_real_failed');
const busy = new Counter('queue_busy');
const busyMs = new Trend('queue_busy_ms', true);
const activeAt = new Trend('queue_active_at_seconds');
const enterDone = new Trend('queue_enter_done_seconds');
const enterPosition = new Trend('queue_enter_position');
const enterEta = new Trend('queue_enter_eta_seconds');
const etaError = new Trend('queue_eta_error_seconds');
const entered = new Counter('queue_entered');
const usersActive = new Counter('queue_users_active');
const notActivated = new Counter('queue_users_not_activated');
const regressions = new Counter('queue_position_regressions');
const expiredWaiting = new Counter('queue_expired_while_waiting');
const badPayload = new Counter('queue_bad_payload');
const soldOut = new Counter('queue_sold_out');
const pollAfter = new Trend('queue_poll_after_seconds');
const pollHintMissing = new Counter('queue_poll_hint_missing');

export const options = {
  scenarios: {
    wave: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(MAX_WAIT_SECONDS + 120)}s`,
      gracefulStop: '30s',
    },
  },
  // One VU's fans go out together: allow the whole group in parallel.
  batch: USERS_PER_VU,
  batchPerHost: USERS_PER_VU,
  setupTimeout: '60s',
  discardResponseBodies: false,
  summaryTrendStats: ['avg', 'min', 'med', 'p(10)', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  thresholds: Object.assign(
    {
      queue_activation_seconds: ['p(95)<60'],
      'http_req_duration{op:queueStatus}': [`p(99)<${latencyMs(200)}`],
      queue_real_failed: ['rate<0.005'],
      queue_users_not_activated: ['count<1'],
      graphql_failed: ['rate>=0'],
      'queue_busy{op:enterQueue}': ['count>=0'],
      'queue_busy{op:queueStatus}': ['count>=0'],
      queue_busy_ms: ['max>=0'],
      // Not thresholds, only so these sub-metrics appear in the exported summary.
      'http_req_duration{op:enterQueue}': ['max>=0'],
      'graphql_failed{op:enterQueue}': ['rate>=0'],
      'graphql_failed{op:queueStatus}': ['rate>=0'],
      'http_reqs{op:enterQueue}': ['count>=0'],
      'http_reqs{op:queueStatus}': ['count>=0'],
      queue_sold_out: ['count>=0'],
      queue_poll_after_seconds: ['max>=0'],
      queue_poll_hint_missing: ['count>=0'],
    },
    errorBreakdownThresholds(['enterQueue', 'queueStatus']),
    windowThresholds,
  ),
};

export function setup() {
  return { t0: Date.now() };
}

function logError(state, fan, op, result) {
  if (state.logged >= ERROR_LOG_PER_VU) return;
  state.logged += 1;
  const body = result.res.body ? String(result.res.body).slice(0, 400) : '';
  console.warn(
    `graphql error: op=${op} user=${fan.userId} status=${result.res.status} ` +
      `code=${errorCode(result)} token=${fan.token || '-'} body=${body}`,
  );
}

function markActive(fan, now, t0) {
  fan.done = true;
  const seconds = (now - fan.enteredAt) / 1000;
  activation.add(seconds);
  activeAt.add((now - t0) / 1000);
  usersActive.add(1);
  if (fan.firstEta !== null) etaError.add(seconds - fan.firstEta);
}

// When the fan asks next after a WAITING answer (or a failed request) to the request sent at
// `sentAt` and answered at `now`.
function schedule(fan, op, status, sentAt, now) {
  if (POLL_MODE === 'fixed') {
    fan.nextAt = (op === 'enterQueue' ? now : sentAt) + POLL_SECONDS * 1000;
  } else {
    fan.nextAt = now + pollDelaySeconds(status, POLL_SECONDS) * 1000;
  }
}

function onWaiting(state, fan, status, op) {
  const hint = pollHint(status);
  if (hint === null) pollHintMissing.add(1, { op });
  else pollAfter.add(hint);
  if (status.position === null || status.position === undefined) {
    badPayload.add(1, { op });
    return;
  }
  if (fan.position !== null && status.position > fan.position) {
    regressions.add(1);
    if (state.logged < ERROR_LOG_PER_VU) {
      state.logged += 1;
      console.warn(`position went up: user=${fan.userId} token=${fan.token} ${fan.position} -> ${status.position}`);
    }
  }
  fan.position = status.position;
}

function onEntered(fan, status, now, t0) {
  fan.token = status.token;
  entered.add(1);
  enterDone.add((now - t0) / 1000);
  if (status.position !== null && status.position !== undefined) enterPosition.add(status.position);
  if (status.estimatedWaitSeconds !== null && status.estimatedWaitSeconds !== undefined) {
    fan.firstEta = status.estimatedWaitSeconds;
    enterEta.add(status.estimatedWaitSeconds);
  }
}

// One answer: the fan is ACTIVE (done), still WAITING (next poll scheduled), or out.
function handle(state, fan, op, result, sentAt, now, t0) {
  if (isBusy(result)) {
    busy.add(1, { op });
    busyMs.add(result.res.timings ? result.res.timings.duration : now - sentAt, { op });
    fan.nextAt = now + busyDelayMs(result);
    return;
  }
  realFailed.add(isRealFailure(result), { op });
  if (result.errors || !(result.data && result.data[op] && result.data[op].status)) {
    if (!result.errors) badPayload.add(1, { op });
    logError(state, fan, op, result);
    if (isSoldOut(result)) {
      soldOut.add(1, { op });
      notActivated.add(1);
      fan.done = true;
      return;
    }
    schedule(fan, op, null, sentAt, now);
    return;
  }
  const status = result.data[op];
  if (op === 'enterQueue') onEntered(fan, status, now, t0);
  switch (status.status) {
    case 'ACTIVE':
      if (op === 'queueStatus' && !status.activeUntil) badPayload.add(1, { op });
      markActive(fan, now, t0);
      return;
    case 'WAITING':
      onWaiting(state, fan, status, op);
      schedule(fan, op, status, sentAt, now);
      return;
    case 'EXPIRED':
    case 'SOLD_OUT':
      // With polling every 2 s and a grace period of 30 s+, a WAITING token must not expire, and
      // this concert is never sold out.
      (status.status === 'EXPIRED' ? expiredWaiting : soldOut).add(1, { op });
      notActivated.add(1);
      fan.done = true;
      console.warn(`${status.status} while waiting: op=${op} user=${fan.userId} token=${fan.token} ` +
        `last position=${fan.position} after ${((now - fan.enteredAt) / 1000).toFixed(1)}s`);
      return;
    default:
      badPayload.add(1, { op });
      schedule(fan, op, null, sentAt, now);
  }
}

export default function (data) {
  const t0 = data.t0;
  const vu = exec.vu.idInTest; // 1-based
  const first = (vu - 1) * USERS_PER_VU;
  const count = Math.min(USERS_PER_VU, USERS - first);
  const state = { logged: 0 };
  const fans = [];
  for (let i = 0; i < count; i++) {
    const userId = USER_ID_BASE + first + i + 1;
    fans.push({ userId, jwt: userToken(userId), token: null, enteredAt: null, position: null, firstEta: null,
      nextAt: 0, done: false });
  }

  const deadline = Date.now() + MAX_WAIT_SECONDS * 1000;
  for (;;) {
    const pending = fans.filter((f) => !f.done);
    if (pending.length === 0) break;
    const sentAt = Date.now();
    if (sentAt > deadline) {
      for (const f of pending) {
        notActivated.add(1);
        console.warn(`not ACTIVE after ${MAX_WAIT_SECONDS}s: user=${f.userId} token=${f.token} ` +
          `last position=${f.position}`);
      }
      break;
    }
    const due = pending.filter((f) => f.nextAt <= sentAt);
    if (due.length === 0) {
      sleep(Math.max(0.01, (Math.min(...pending.map((f) => f.nextAt)) - sentAt) / 1000));
      continue;
    }
    // Fans without a token (first round, or their enter failed) enter; the others poll.
    const tags = { window: windowTag(sentAt - t0) };
    const ops = due.map((f) =>
      f.token
        ? { query: STATUS, variables: { t: f.token }, token: f.jwt, name: 'queueStatus', tags }
        : { query: ENTER, variables: { c: CONCERT_ID }, token: f.jwt, name: 'enterQueue', tags },
    );
    for (const f of due) if (f.enteredAt === null) f.enteredAt = sentAt;
    const results = gqlBatch(URL, ops);
    const now = Date.now();
    results.forEach((result, i) => handle(state, due[i], ops[i].name, result, sentAt, now, t0));
  }
}
