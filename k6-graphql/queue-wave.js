// Scenario 2 of the load-test plan (LOAD-TEST-PLAN.md, "Queue activation wave"): USERS fans get a queue token at
// the same moment and poll their status every POLL_SECONDS until ACTIVE.
//
// Run it through `scripts/load queue-wave [--users N]`, which starts a release server with the
// scenario's queue settings and writes docs/results/queue-wave.{md,json}. By hand:
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e USERS=500 k6-graphql/queue-wave.js
//
// Load model. One k6 VU per fan would be the literal model; measured on this 2-vCPU / 24 GB
// machine (k6 v1.1.0, 10,000 fans, same server): 10,000 VUs took 4.7 GB RSS, ~190 % CPU for
// several seconds just to initialise and ~90 % of a core while fans waited, CPU the server it
// shares the 2 cores with needs. 1,000 VUs x 10 fans: 1.1 GB, ~70 %. So by default each VU
// simulates USERS_PER_VU fans (10: 1,000 VUs for 10,000 fans): at the start every VU enters all
// of its fans at once (one http.batch, all in parallel on their own connections), then every
// POLL_SECONDS it polls all of its fans still WAITING in one parallel http.batch. The schedule
// is fixed-rate like a client's setInterval started when its token arrived (first poll
// POLL_SECONDS after the enter answer, then a round every POLL_SECONDS from the previous
// round's start; late rounds are not caught up), so the server sees exactly "USERS fans each
// polling every POLL_SECONDS" as long as a round takes less than POLL_SECONDS, and fewer polls,
// never more, when it is slower. All VUs are initialised before the start and begin together
// (per-vu-iterations), so all fans enter in the same instant, as in the plan ("get tokens at
// once"). A fan whose enterQueue fails retries it in the next round; its activation time still
// counts from its first attempt. USERS_PER_VU=1 gives the literal one-VU-per-fan model.
//
// Env: BASE_URL (http://127.0.0.1:8080), USERS (10000), USERS_PER_VU (10), POLL_SECONDS (2),
//      CONCERT_ID (1), USER_ID_BASE (1000000: fans are users BASE+1 .. BASE+USERS),
//      MAX_WAIT_SECONDS (300: a fan not ACTIVE by then gives up and counts as not activated),
//      JWT_SECRET (dev-secret-change-me), ERROR_LOG_PER_VU (2: error responses logged per VU).
//
// Thresholds (plan, scenario 2 + success criteria):
//   queue_activation_seconds p(95) < 60       enter sent -> first ACTIVE seen, per fan
//   http_req_duration{op:queueStatus} p(99) < 200 ms
//   graphql_failed rate < 0.5 %               HTTP != 200 or `errors` in the body
//   queue_users_not_activated count == 0      (integrity: every fan must get in; a fan who never
//                                              does has no activation time, which would flatter P95)
// Also recorded: queue_entered / queue_enter_done_seconds (entry throughput), queue_users_active
// and queue_active_at_seconds (time since start when each fan was seen ACTIVE: admissions/s and
// the 10 % -> 100 % ramp), queue_position_regressions (a WAITING fan's position went up),
// queue_expired_while_waiting, queue_enter_position and queue_enter_eta_seconds (place and
// estimatedWaitSeconds in the enterQueue answer), queue_eta_error_seconds (activation time minus
// that estimate).
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { errorBreakdownThresholds, errorCode, gqlBatch } from './lib/graphql.js';
import { userToken } from './lib/jwt.js';
import { BASE_URL, latencyMs } from './lib/config.js';

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
  enterQueue(concertId: $c) { token status position ahead estimatedWaitSeconds }
}`;
const STATUS = `query queueStatus($t: String!) {
  queueStatus(token: $t) { status position estimatedWaitSeconds activeUntil }
}`;

const activation = new Trend('queue_activation_seconds');
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
      graphql_failed: ['rate<0.005'],
      queue_users_not_activated: ['count<1'],
      // Not thresholds, only so these sub-metrics appear in the exported summary.
      'http_req_duration{op:enterQueue}': ['max>=0'],
      'graphql_failed{op:enterQueue}': ['rate>=0'],
      'graphql_failed{op:queueStatus}': ['rate>=0'],
      'http_reqs{op:enterQueue}': ['count>=0'],
      'http_reqs{op:queueStatus}': ['count>=0'],
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

export default function (data) {
  const t0 = data.t0;
  const vu = exec.vu.idInTest; // 1-based
  const first = (vu - 1) * USERS_PER_VU;
  const count = Math.min(USERS_PER_VU, USERS - first);
  const state = { logged: 0 };
  const fans = [];
  for (let i = 0; i < count; i++) {
    const userId = USER_ID_BASE + first + i + 1;
    fans.push({
      userId,
      jwt: userToken(userId),
      token: null,
      enteredAt: null,
      position: null,
      firstEta: null,
      done: false,
    });
  }

  const start = Date.now();
  const deadline = start + MAX_WAIT_SECONDS * 1000;
  for (;;) {
    const pending = fans.filter((f) => !f.done);
    if (pending.length === 0) break;
    const roundStart = Date.now();
    if (roundStart > deadline) {
      for (const f of pending) {
        notActivated.add(1);
        console.warn(
          `not ACTIVE after ${MAX_WAIT_SECONDS}s: user=${f.userId} token=${f.token} ` +
            `last position=${f.position}`,
        );
      }
      break;
    }
    // Fans without a token (first round, or their enter failed) enter; the others poll.
    const tags = { window: windowTag(roundStart - t0) };
    const ops = pending.map((f) =>
      f.token
        ? { query: STATUS, variables: { t: f.token }, token: f.jwt, name: 'queueStatus', tags }
        : { query: ENTER, variables: { c: CONCERT_ID }, token: f.jwt, name: 'enterQueue', tags },
    );
    for (const f of pending) if (f.enteredAt === null) f.enteredAt = roundStart;
    const results = gqlBatch(URL, ops);
    const now = Date.now();
    results.forEach((result, i) => {
      const fan = pending[i];
      const op = ops[i].name;
      if (result.errors) {
        logError(state, fan, op, result);
        return;
      }
      const status = result.data && result.data[op];
      if (!status || !status.status) {
        badPayload.add(1, { op });
        logError(state, fan, op, result);
        return;
      }
      if (op === 'enterQueue') {
        fan.token = status.token;
        entered.add(1);
        enterDone.add((now - t0) / 1000);
        if (status.position !== null && status.position !== undefined) {
          enterPosition.add(status.position);
        }
        if (status.estimatedWaitSeconds !== null && status.estimatedWaitSeconds !== undefined) {
          fan.firstEta = status.estimatedWaitSeconds;
          enterEta.add(status.estimatedWaitSeconds);
        }
      }
      switch (status.status) {
        case 'ACTIVE':
          if (op === 'queueStatus' && !status.activeUntil) badPayload.add(1, { op });
          markActive(fan, now, t0);
          break;
        case 'WAITING':
          if (status.position === null || status.position === undefined) {
            badPayload.add(1, { op });
          } else {
            if (fan.position !== null && status.position > fan.position) {
              regressions.add(1);
              if (state.logged < ERROR_LOG_PER_VU) {
                state.logged += 1;
                console.warn(
                  `position went up: user=${fan.userId} token=${fan.token} ` +
                    `${fan.position} -> ${status.position}`,
                );
              }
            }
            fan.position = status.position;
          }
          break;
        case 'EXPIRED':
          // With polling every 2 s and a grace period of 30 s+, a WAITING token must not expire.
          expiredWaiting.add(1, { op });
          notActivated.add(1);
          fan.done = true;
          console.warn(
            `EXPIRED while waiting: op=${op} user=${fan.userId} token=${fan.token} ` +
              `last position=${fan.position} after ${((now - fan.enteredAt) / 1000).toFixed(1)}s`,
          );
          break;
        default:
          badPayload.add(1, { op });
      }
    });
    if (fans.every((f) => f.done)) break;
    // Fixed-rate schedule, like a client's setInterval started when its token arrived: the
    // first poll comes POLL_SECONDS after the enter answer, each later one POLL_SECONDS after
    // the previous poll started. Late rounds are not caught up (a slow server gets no extra
    // bursts), and anchoring on the enter answer keeps the VUs from polling in artificial
    // lockstep just because they all started at the same instant.
    const anchor = ops.some((o) => o.name === 'enterQueue') ? now : roundStart;
    const wait = anchor + POLL_SECONDS * 1000 - Date.now();
    if (wait > 0) sleep(wait / 1000);
  }
}
