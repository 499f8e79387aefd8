// Ceilings of this machine, measured in the same run and on the same cores as the scenarios, so
// their numbers can be read as a share of what is possible here at all (`scripts/load ceiling`,
// docs/results/ceiling.md), and the cost of each hot operation on its own. Two k6 runs of this
// script: PHASE=prepare (not measured) makes the holds the `pay` part pays, through the API; then
// PHASE=measure runs six parts, one after the other, SECONDS_EACH each with GAP seconds between
// them, closed model (VUs looping with no pause: as much as k6 and the server manage together):
//   healthz      GET /healthz: HTTP + axum + k6 itself, no GraphQL, no database, no Redis
//   typename     POST /graphql `{ __typename }`: the GraphQL engine and its extensions added
//   seatmap      the seat map of schedule SEAT_MAP_SCHEDULE (SEATS_PER_SCHEDULE seats), cached: setup
//                asked for it once, so every request of the part is served from the cache
//   queueStatus  queueStatus of a hold fan's ACTIVE token (fan = VU mod HOLD_FANS)
//   holds        holdBestAvailable(count: 1): iteration i is fan (i mod HOLD_FANS) on schedule
//                (i div HOLD_FANS) + 1 of concert CONCERT_ID, so each pair holds once (one live
//                hold per fan and schedule) and nothing needs undoing; every hold fan got an
//                ACTIVE queue token in setup
//   pay          pay: iteration k pays prepared hold k (fan PAY_USER_BASE + k + 1 in concert
//                PAY_CONCERT_ID, with that fan's ACTIVE token: paying ends it, so one hold each)
// setup() prints `CEILING_T0 <epoch ms>` (when the parts' clock starts) to the k6 log: the runner
// places each part's window in its CPU and /metrics samples from it.
// The runner adds pgbench on the hold statement (k6-graphql/tools/hold.pgbench.sql).
//
// Prepare (PHASE=prepare): PAY_HOLDS holds; hold k is fan PAY_USER_BASE + k + 1 on seat number
// (k mod SEATS_PER_SCHEDULE) + 1 of schedule SCHEDULES + (k div SEATS_PER_SCHEDULE) + 1 (concert
// PAY_CONCERT_ID's schedules follow concert CONCERT_ID's), made with lib/holds.js and printed as
// `PREPARED [[k, reservationId, queueToken], ...]` lines (the runner collects them into PREPARED).
//
// Env: PHASE (measure), SECONDS_EACH (15), VUS (32), HOLD_VUS (16), PAY_VUS (16), HOLD_FANS (50),
//      SCHEDULES (schedules per concert), SEATS_PER_SCHEDULE (50), CONCERT_ID (1),
//      PAY_CONCERT_ID (2), SEAT_MAP_SCHEDULE (1), PAY_HOLDS (1000), PREPARED (file, measure),
//      RUN_ID (idempotency-key prefix), USER_ID_BASE (0: hold fans are users 1..HOLD_FANS),
//      PREP_VUS (20), PREP_BATCH (10).
import exec from 'k6/execution';
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { errorBreakdownThresholds, gql, gqlBatch } from './lib/graphql.js';
import { PREPARE_THRESHOLDS, makeHolds } from './lib/holds.js';
import { userToken } from './lib/jwt.js';
import { ENTER, HOLD_BEST, PAY, SEAT_MAP, STATUS, TYPENAME } from './lib/operations.js';
import { BASE_URL, GRAPHQL_URL, TREND_STATS, envInt, envStr, info } from './lib/config.js';

const PHASE = envStr('PHASE', 'measure');
const SECONDS_EACH = envInt('SECONDS_EACH', 15);
const VUS = envInt('VUS', 32);
const HOLD_VUS = envInt('HOLD_VUS', 16);
const PAY_VUS = envInt('PAY_VUS', 16);
const HOLD_FANS = envInt('HOLD_FANS', 50);
const SCHEDULES = envInt('SCHEDULES', 1000);
const SEATS_PER_SCHEDULE = envInt('SEATS_PER_SCHEDULE', 50);
const CONCERT_ID = envStr('CONCERT_ID', '1');
const PAY_CONCERT_ID = envStr('PAY_CONCERT_ID', '2');
const SEAT_MAP_SCHEDULE = envStr('SEAT_MAP_SCHEDULE', '1');
const PAY_HOLDS = envInt('PAY_HOLDS', 1000);
const USER_ID_BASE = envInt('USER_ID_BASE', 0);
const PAY_USER_BASE = USER_ID_BASE + HOLD_FANS;
const RUN_ID = envStr('RUN_ID', String(Date.now()));
const PREP_VUS = Math.max(1, Math.min(envInt('PREP_VUS', 20), PAY_HOLDS));
const PREP_BATCH = Math.max(1, envInt('PREP_BATCH', 10));
const GAP = 3;
// The parts in the order they run; the runner reads the same order from PARTS in ceiling.py.
const PARTS = [['healthz', VUS], ['typename', VUS], ['seatmap', VUS], ['queueStatus', VUS], ['holds', HOLD_VUS],
  ['pay', PAY_VUS]];
const OPS = ['typename', 'schedule', 'queueStatus', 'holdBestAvailable', 'pay'];

const holdsOk = new Counter('ceiling_holds_ok');
const holdsFailed = new Counter('ceiling_holds_failed');
const exhausted = new Counter('ceiling_schedules_exhausted');
const paysOk = new Counter('ceiling_pay_ok');
const paysFailed = new Counter('ceiling_pay_failed');
const noHoldLeft = new Counter('ceiling_pay_no_hold_left');
const okCounters = ['ceiling_holds_ok', 'ceiling_holds_failed', 'ceiling_schedules_exhausted', 'ceiling_pay_ok',
  'ceiling_pay_failed', 'ceiling_pay_no_hold_left'];

function measureOptions() {
  const scenarios = {};
  PARTS.forEach(([name, vus], i) => {
    scenarios[name] = {
      executor: 'constant-vus', exec: name, vus, duration: `${SECONDS_EACH}s`, startTime: `${i * (SECONDS_EACH + GAP)}s`,
      gracefulStop: '5s', tags: { part: name },
    };
  });
  const names = PARTS.map(([name]) => name);
  return {
    scenarios,
    setupTimeout: '120s',
    summaryTrendStats: TREND_STATS,
    thresholds: Object.assign(
      {},
      info('trend', names.map((p) => `http_req_duration{part:${p}}`)),
      info('counter', names.map((p) => `http_reqs{part:${p}}`).concat(okCounters)),
      info('rate', ['http_req_failed{part:healthz}'].concat(names.slice(1).map((p) => `graphql_failed{part:${p}}`))),
      errorBreakdownThresholds(OPS),
    ),
  };
}

function prepareOptions() {
  return {
    scenarios: { prepare: { executor: 'per-vu-iterations', exec: 'prepare', vus: PREP_VUS, iterations: 1, maxDuration: '900s', gracefulStop: '10s' } },
    batch: PREP_BATCH,
    batchPerHost: PREP_BATCH,
    summaryTrendStats: TREND_STATS,
    thresholds: Object.assign({}, PREPARE_THRESHOLDS, errorBreakdownThresholds(['enterQueue', 'queueStatus', 'holdSeats'])),
  };
}

export const options = PHASE === 'prepare' ? prepareOptions() : measureOptions();

const prepared = PHASE === 'prepare' ? null : new SharedArray('prepared', () => {
  if (!__ENV.PREPARED) return [];
  return JSON.parse(open(__ENV.PREPARED));
});

const jwts = {};
function jwtOf(userId) {
  return jwts[userId] || (jwts[userId] = userToken(userId, { ttlSeconds: 4 * 3600 }));
}
const holdFan = (fan) => USER_ID_BASE + fan + 1;

// Every hold fan enters the queue and waits until ACTIVE (admission is set far above them); the
// seat map is asked for once, so the part finds it cached.
function enterHoldFans() {
  const fans = [...Array(HOLD_FANS).keys()];
  const tokens = [];
  const entered = gqlBatch(GRAPHQL_URL, fans.map((fan) => ({ query: ENTER, variables: { c: CONCERT_ID },
    token: jwtOf(holdFan(fan)), name: 'enterQueue' })));
  entered.forEach((r, fan) => {
    const d = !r.errors && r.data && r.data.enterQueue;
    if (!d) throw new Error(`enterQueue failed for fan ${fan}: ${r.res.body}`);
    tokens.push({ token: d.token, status: d.status });
  });
  for (let i = 0; i < 40 && tokens.some((t) => t.status !== 'ACTIVE'); i++) {
    sleep(0.25);
    const waiting = fans.filter((fan) => tokens[fan].status !== 'ACTIVE');
    const polled = gqlBatch(GRAPHQL_URL, waiting.map((fan) => ({ query: STATUS, variables: { t: tokens[fan].token },
      token: jwtOf(holdFan(fan)), name: 'queueStatus' })));
    polled.forEach((s, j) => {
      tokens[waiting[j]].status = (!s.errors && s.data && s.data.queueStatus.status) || tokens[waiting[j]].status;
    });
  }
  const late = tokens.findIndex((t) => t.status !== 'ACTIVE');
  if (late >= 0) throw new Error(`fan ${late} not ACTIVE: ${tokens[late].status}`);
  return tokens.map((t) => t.token);
}

export function setup() {
  if (PHASE === 'prepare') return {};
  const tokens = enterHoldFans();
  const map = gql(GRAPHQL_URL, SEAT_MAP, { id: SEAT_MAP_SCHEDULE }, { name: 'schedule' });
  const seats = !map.errors && map.data && map.data.schedule && map.data.schedule.seats;
  if (!seats || seats.length !== SEATS_PER_SCHEDULE) {
    throw new Error(`the seat map of schedule ${SEAT_MAP_SCHEDULE} has no ${SEATS_PER_SCHEDULE} seats: ${map.res.body}`);
  }
  if (prepared.length < PAY_HOLDS) console.warn(`${prepared.length} of ${PAY_HOLDS} holds prepared for the pay part`);
  const t0 = Date.now();
  console.log(`CEILING_T0 ${t0}`);
  return { tokens, t0 };
}

// Prepare: this VU's contiguous slice of the PAY_HOLDS holds.
export function prepare() {
  const vu = exec.vu.idInTest - 1;
  const per = Math.ceil(PAY_HOLDS / PREP_VUS);
  const items = [];
  for (let k = vu * per; k < Math.min(PAY_HOLDS, (vu + 1) * per); k++) {
    const schedule = SCHEDULES + Math.floor(k / SEATS_PER_SCHEDULE) + 1;
    const seat = (schedule - 1) * SEATS_PER_SCHEDULE + (k % SEATS_PER_SCHEDULE) + 1;
    items.push({ k, userId: PAY_USER_BASE + k + 1, concertId: PAY_CONCERT_ID, scheduleId: String(schedule), seatIds: [String(seat)] });
  }
  let logged = 0;
  makeHolds(items, {
    batch: PREP_BATCH, jwtOf,
    onError: (what, r) => { if (logged++ < 3) console.warn(`prepare: ${what}: ${r.res.body}`); },
    onBatch: (done) => console.log(`PREPARED ${JSON.stringify(done.map((h) => [h.k, h.reservationId, h.token]))}`),
  });
}

export function healthz() {
  http.get(`${BASE_URL}/healthz`, { tags: { op: 'healthz' } });
}

export function typename() {
  gql(GRAPHQL_URL, TYPENAME, {}, { name: 'typename' });
}

export function seatmap() {
  gql(GRAPHQL_URL, SEAT_MAP, { id: SEAT_MAP_SCHEDULE }, { name: 'schedule' });
}

export function queueStatus(data) {
  const fan = (exec.vu.idInTest - 1) % HOLD_FANS;
  gql(GRAPHQL_URL, STATUS, { t: data.tokens[fan] }, { token: jwtOf(holdFan(fan)), name: 'queueStatus' });
}

export function holds(data) {
  const i = exec.scenario.iterationInTest;
  const fan = i % HOLD_FANS;
  const schedule = Math.floor(i / HOLD_FANS) + 1;
  if (schedule > SCHEDULES) {
    exhausted.add(1);
    sleep(1);
    return;
  }
  const r = gql(GRAPHQL_URL, HOLD_BEST, { s: String(schedule), n: 1 },
    { token: jwtOf(holdFan(fan)), queueToken: data.tokens[fan], name: 'holdBestAvailable' });
  if (!r.errors && r.data && r.data.holdBestAvailable) holdsOk.add(1);
  else holdsFailed.add(1);
}

export function pay() {
  const i = exec.scenario.iterationInTest;
  if (i >= prepared.length) {
    noHoldLeft.add(1);
    sleep(1);
    return;
  }
  const [k, reservationId, queueToken] = prepared[i];
  const r = gql(GRAPHQL_URL, PAY, { r: String(reservationId), k: `ceiling-${RUN_ID}-${k}` },
    { token: jwtOf(PAY_USER_BASE + k + 1), queueToken, name: 'pay' });
  if (!r.errors && r.data && r.data.pay && r.data.pay.paymentId) paysOk.add(1);
  else paysFailed.add(1);
}

export default function () {}
