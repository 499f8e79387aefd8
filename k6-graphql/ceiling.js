// Ceilings of this machine, measured in the same run and on the same cores as the scenarios, so
// their numbers can be read as a share of what is possible here at all (`scripts/load ceiling`,
// docs/results/ceiling.md). Three parts, one after the other, SECONDS_EACH each, closed model
// (VUS looping with no pause: as much as k6 and the server manage together):
//   healthz   GET /healthz: HTTP + axum + k6 itself, no GraphQL, no database, no Redis
//   typename  POST /graphql `{ __typename }`: the GraphQL engine and its extensions added
//   holds     holdBestAvailable(count: 1) through the API: iteration i is fan (i mod HOLD_VUS) on
//             schedule (i div HOLD_VUS) + 1, so each pair holds once (one live hold per fan and
//             schedule) and nothing needs undoing; every fan got an ACTIVE queue token in setup
// The runner adds pgbench on the raw hold transaction (k6-graphql/tools/hold.pgbench.sql).
//
// Env: SECONDS_EACH (15), VUS (32), HOLD_VUS (16), SCHEDULES (schedules seeded), CONCERT_ID (1),
//      USER_ID_BASE (0: fans are users 1..HOLD_VUS).
import exec from 'k6/execution';
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { errorBreakdownThresholds, gql } from './lib/graphql.js';
import { userToken } from './lib/jwt.js';
import { ENTER, HOLD_BEST, STATUS, TYPENAME } from './lib/operations.js';
import { BASE_URL, GRAPHQL_URL, TREND_STATS, envInt, envStr, info } from './lib/config.js';

const SECONDS_EACH = envInt('SECONDS_EACH', 15);
const VUS = envInt('VUS', 32);
const HOLD_VUS = envInt('HOLD_VUS', 16);
const SCHEDULES = envInt('SCHEDULES', 1000);
const CONCERT_ID = envStr('CONCERT_ID', '1');
const USER_ID_BASE = envInt('USER_ID_BASE', 0);
const GAP = 3;

const holdsOk = new Counter('ceiling_holds_ok');
const holdsFailed = new Counter('ceiling_holds_failed');
const exhausted = new Counter('ceiling_schedules_exhausted');

const part = (name, exec_, vus, start) => ({
  executor: 'constant-vus', exec: exec_, vus, duration: `${SECONDS_EACH}s`, startTime: `${start}s`,
  gracefulStop: '5s', tags: { part: name },
});

export const options = {
  scenarios: {
    healthz: part('healthz', 'healthz', VUS, 0),
    typename: part('typename', 'typename', VUS, SECONDS_EACH + GAP),
    holds: part('holds', 'holds', HOLD_VUS, 2 * (SECONDS_EACH + GAP)),
  },
  summaryTrendStats: TREND_STATS,
  thresholds: Object.assign(
    {},
    info('trend', ['http_req_duration{part:healthz}', 'http_req_duration{part:typename}', 'http_req_duration{part:holds}']),
    info('counter', ['http_reqs{part:healthz}', 'http_reqs{part:typename}', 'http_reqs{part:holds}',
      'ceiling_holds_ok', 'ceiling_holds_failed', 'ceiling_schedules_exhausted']),
    info('rate', ['http_req_failed{part:healthz}', 'graphql_failed{part:typename}', 'graphql_failed{part:holds}']),
    errorBreakdownThresholds(['typename', 'holdBestAvailable']),
  ),
};

const jwts = [];
function jwtOf(fan) {
  return jwts[fan] || (jwts[fan] = userToken(USER_ID_BASE + fan + 1, { ttlSeconds: 4 * 3600 }));
}

// Every hold fan enters the queue and waits until ACTIVE (admission is set far above them).
export function setup() {
  const tokens = [];
  for (let fan = 0; fan < HOLD_VUS; fan++) {
    const r = gql(GRAPHQL_URL, ENTER, { c: CONCERT_ID }, { token: jwtOf(fan), name: 'enterQueue' });
    const d = !r.errors && r.data && r.data.enterQueue;
    if (!d) throw new Error(`enterQueue failed for fan ${fan}: ${r.res.body}`);
    let status = d.status;
    for (let i = 0; status === 'WAITING' && i < 40; i++) {
      sleep(0.25);
      const s = gql(GRAPHQL_URL, STATUS, { t: d.token }, { token: jwtOf(fan), name: 'queueStatus' });
      status = (!s.errors && s.data && s.data.queueStatus.status) || status;
    }
    if (status !== 'ACTIVE') throw new Error(`fan ${fan} not ACTIVE: ${status}`);
    tokens.push(d.token);
  }
  return { tokens };
}

export function healthz() {
  http.get(`${BASE_URL}/healthz`, { tags: { op: 'healthz' } });
}

export function typename() {
  gql(GRAPHQL_URL, TYPENAME, {}, { name: 'typename' });
}

export function holds(data) {
  const i = exec.scenario.iterationInTest;
  const fan = i % HOLD_VUS;
  const schedule = Math.floor(i / HOLD_VUS) + 1;
  if (schedule > SCHEDULES) {
    exhausted.add(1);
    sleep(1);
    return;
  }
  const r = gql(GRAPHQL_URL, HOLD_BEST, { s: String(schedule), n: 1 },
    { token: jwtOf(fan), queueToken: data.tokens[fan], name: 'holdBestAvailable' });
  if (!r.errors && r.data && r.data.holdBestAvailable) holdsOk.add(1);
  else holdsFailed.add(1);
}

export default function () {}
