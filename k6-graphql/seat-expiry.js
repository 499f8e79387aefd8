// Scenario 4 of the load-test plan (docs/load-test-plan.md, "Seat-expiry batch"): SEATS seats
// held through the API expire together; how long until every one is back on sale, and how the
// pipeline (sweeper -> outbox -> relay -> Kafka seats.expired -> consumer) keeps up.
//
// Run it through `scripts/load seat-expiry [--holds N] [--ttl S]`, which seeds one schedule of N
// seats and N / SEATS_PER_HOLD fans, starts a server with holds of S seconds, runs this script
// twice and writes docs/results/seat-expiry.{md,json}:
//
// 1. PHASE=prepare (not measured): fan u holds seats (u-1) x SEATS_PER_HOLD + 1 ... of schedule 1
//    through the API (enterQueue, then holdSeats with the ACTIVE Queue-Token; lib/holds.js),
//    PREP_VUS VUs, PREP_BATCH requests at a time. The runner then moves every hold's end to the
//    end of the last one made (ALIGN_EXPIRY=1, default), so the batch expires in one instant
//    (EXPIRES_AT_MS) as in the plan.
// 2. PHASE=watch (measured): one VU sleeps until shortly before EXPIRES_AT_MS, then until every
//    seat is back or EXPIRY_WAIT_SECONDS (3 x TARGET_SECONDS) have passed:
//    - every 250 ms `schedule { availableSeats }` (the API's count, read from PostgreSQL);
//    - every second the seat map `schedule { seats { status } }` (served from the Redis cache that
//      each release drops) and the server's /metrics: holds_expired_total (sweeper),
//      outbox_published_total (relay), consumer_events_total (consumer), seats_released_total
//      {by=consumer|backstop}, consumer_lag (the server's own measure, every 5 s).
//    The API reads a seat whose hold ran out as AVAILABLE at once (before any sweep): its answer
//    says what a fan sees, the counters say when the pipeline really released the rows (the runner
//    also polls SQL every 0.5 s: expiry-sql.tsv).
//
// Env: SEATS, SEATS_PER_HOLD (1), FANS, CONCERT_ID (1), SCHEDULE_ID (1), HOLD_TTL, TARGET_SECONDS
//      (60), EXPIRES_AT_MS, SEATS_HELD, HOLDS_MADE (watch: from the runner), EXPIRY_WAIT_SECONDS,
//      PREP_VUS (20), PREP_BATCH (10), PREP_MAX_SECONDS (600), USER_ID_BASE (0).
//
// Thresholds (watch; plan scenario 4 + consumer-lag criterion), seconds after the expiry instant:
//   expiry_released_seconds max < TARGET_SECONDS    every seat released (server counters)
//   expiry_api_available_seconds max < TARGET        the API shows every seat AVAILABLE
//   expiry_seatmap_available_seconds max < TARGET    so does the (cached) seat map
//   expiry_not_back count < 1                        nothing still held when the watch gave up
//   expiry_peak_lag max < 1000                       messages published but not consumed (the
//                                                    larger of the server's consumer_lag gauge and
//                                                    published seats.expired - consumed, each second)
import exec from 'k6/execution';
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Gauge, Trend } from 'k6/metrics';
import { errorBreakdownThresholds, errorCode, gql } from './lib/graphql.js';
import { PREPARE_THRESHOLDS, makeHolds } from './lib/holds.js';
import { userToken } from './lib/jwt.js';
import { AVAILABLE, SEAT_MAP } from './lib/operations.js';
import { BASE_URL, GRAPHQL_URL, TREND_STATS, envFloat, envInt, envStr, info, logLimited } from './lib/config.js';

const PHASE = envStr('PHASE', 'watch');
const SEATS = envInt('SEATS', 5000);
const PER_HOLD = envInt('SEATS_PER_HOLD', 1);
const FANS = envInt('FANS', Math.ceil(SEATS / PER_HOLD));
const CONCERT_ID = envStr('CONCERT_ID', '1');
const SCHEDULE_ID = envStr('SCHEDULE_ID', '1');
const USER_ID_BASE = envInt('USER_ID_BASE', 0);
const TARGET_SECONDS = envFloat('TARGET_SECONDS', 60);
const WAIT_SECONDS = envFloat('EXPIRY_WAIT_SECONDS', 3 * TARGET_SECONDS);
const EXPIRES_AT_MS = envInt('EXPIRES_AT_MS', 0);
const SEATS_HELD = envInt('SEATS_HELD', SEATS);
const HOLDS_MADE = envInt('HOLDS_MADE', FANS);
const PREP_VUS = Math.max(1, Math.min(envInt('PREP_VUS', 20), FANS));
const PREP_BATCH = Math.max(1, envInt('PREP_BATCH', 10));
const PREP_MAX_SECONDS = envFloat('PREP_MAX_SECONDS', 600);
const ERROR_LOG_PER_VU = envInt('ERROR_LOG_PER_VU', 3);
if (PHASE !== 'prepare' && PHASE !== 'watch') throw new Error(`PHASE must be prepare or watch, not ${PHASE}`);
if (PHASE === 'watch' && !EXPIRES_AT_MS) throw new Error('EXPIRES_AT_MS (from the prepare phase) is needed');

// watch: seconds after the expiry instant when each view saw every seat back (one value each).
const apiAvailable = new Trend('expiry_api_available_seconds');
const seatmapAvailable = new Trend('expiry_seatmap_available_seconds');
const swept = new Trend('expiry_swept_seconds');
const relayed = new Trend('expiry_relayed_seconds');
const consumed = new Trend('expiry_consumed_seconds');
const released = new Trend('expiry_released_seconds');
const notBack = new Counter('expiry_not_back');
const peakLag = new Trend('expiry_peak_lag');
const lagSamples = new Trend('expiry_lag');
const serverLag = new Trend('expiry_server_consumer_lag');
const apiAvailableSeen = new Gauge('expiry_api_available_seats_last');
const pollErrors = new Counter('expiry_poll_errors');

function prepareOptions() {
  return {
    scenarios: {
      prepare: { executor: 'per-vu-iterations', vus: PREP_VUS, iterations: 1,
        maxDuration: `${Math.ceil(PREP_MAX_SECONDS)}s`, gracefulStop: '10s' },
    },
    batch: PREP_BATCH,
    batchPerHost: PREP_BATCH,
    summaryTrendStats: TREND_STATS,
    thresholds: Object.assign({}, PREPARE_THRESHOLDS, errorBreakdownThresholds(['enterQueue', 'queueStatus', 'holdSeats'])),
  };
}

function watchOptions() {
  const until = Math.max(0, (EXPIRES_AT_MS - Date.now()) / 1000);
  return {
    scenarios: {
      watch: { executor: 'per-vu-iterations', vus: 1, iterations: 1,
        maxDuration: `${Math.ceil(until + WAIT_SECONDS + 60)}s`, gracefulStop: '10s' },
    },
    summaryTrendStats: TREND_STATS,
    thresholds: Object.assign(
      {},
      info('trend', ['expiry_swept_seconds', 'expiry_relayed_seconds', 'expiry_consumed_seconds', 'expiry_lag',
        'expiry_server_consumer_lag', 'http_req_duration{op:availableSeats}', 'http_req_duration{op:schedule}']),
      info('counter', ['expiry_poll_errors']),
      info('gauge', ['expiry_api_available_seats_last']),
      errorBreakdownThresholds(['availableSeats', 'schedule']),
      {
        expiry_released_seconds: [`max<${TARGET_SECONDS}`],
        expiry_api_available_seconds: [`max<${TARGET_SECONDS}`],
        expiry_seatmap_available_seconds: [`max<${TARGET_SECONDS}`],
        expiry_not_back: ['count<1'],
        expiry_peak_lag: ['max<1000'],
      },
    ),
  };
}

export const options = PHASE === 'prepare' ? prepareOptions() : watchOptions();

function logError(what, result) {
  const body = result.res.body ? String(result.res.body).slice(0, 300) : '';
  logLimited('error', ERROR_LOG_PER_VU, `graphql error: ${what} status=${result.res.status} code=${errorCode(result)} body=${body}`);
}

// ---- prepare: fans [first, last) of this VU hold their seats.
function prepare() {
  const per = Math.ceil(FANS / PREP_VUS);
  const first = (exec.vu.idInTest - 1) * per;
  const last = Math.min(FANS, first + per);
  const jwts = {};
  const jwtOf = (userId) => jwts[userId] || (jwts[userId] = userToken(userId, { ttlSeconds: 4 * 3600 }));
  const items = [];
  for (let u = first; u < last; u++) {
    const seatIds = [];
    for (let i = 0; i < PER_HOLD && u * PER_HOLD + i < SEATS; i++) seatIds.push(String(u * PER_HOLD + i + 1));
    items.push({ userId: USER_ID_BASE + u + 1, concertId: CONCERT_ID, scheduleId: SCHEDULE_ID, seatIds });
  }
  makeHolds(items, { batch: PREP_BATCH, deadline: Date.now() + PREP_MAX_SECONDS * 1000, jwtOf, onError: logError });
}

// ---- watch
function scrape() {
  const res = http.get(`${BASE_URL}/metrics`, { tags: { op: 'metrics' }, timeout: '5s' });
  if (res.status !== 200) return null;
  const sum = (re) => {
    let total = 0;
    let seen = false;
    for (const line of res.body.split('\n')) {
      const m = re.exec(line);
      if (m) {
        total += parseFloat(m[1]);
        seen = true;
      }
    }
    return seen ? total : 0;
  };
  return {
    swept: sum(/^holds_expired_total (\S+)$/),
    published: sum(/^outbox_published_total (\S+)$/),
    consumed: sum(/^consumer_events_total\{[^}]*\} (\S+)$/),
    released: sum(/^seats_released_total\{[^}]*\} (\S+)$/),
    lag: sum(/^consumer_lag (\S+)$/),
  };
}

function watch() {
  const lead = EXPIRES_AT_MS - 2000 - Date.now();
  if (lead > 0) sleep(lead / 1000);
  const base = scrape();
  if (!base) throw new Error('/metrics did not answer');
  const since = () => (Date.now() - EXPIRES_AT_MS) / 1000;
  const seen = {};
  const mark = (name, trend) => {
    if (seen[name] === undefined && since() >= 0) {
      seen[name] = since();
      trend.add(Math.max(0, seen[name]));
    }
  };
  let maxLag = 0;
  let lastScrape = 0;
  let lastMap = 0;
  const deadline = EXPIRES_AT_MS + WAIT_SECONDS * 1000;
  while (Date.now() < deadline) {
    const now = Date.now();
    const r = gql(GRAPHQL_URL, AVAILABLE, { id: SCHEDULE_ID }, { name: 'availableSeats' });
    const d = !r.errors && r.data && r.data.schedule;
    if (d) {
      apiAvailableSeen.add(d.availableSeats);
      if (d.availableSeats >= SEATS) mark('api', apiAvailable);
    } else {
      pollErrors.add(1);
      logError('availableSeats', r);
    }
    if (now - lastMap >= 1000) {
      lastMap = now;
      const m = gql(GRAPHQL_URL, SEAT_MAP, { id: SCHEDULE_ID }, { name: 'schedule' });
      const map = !m.errors && m.data && m.data.schedule;
      if (map) {
        if ((map.seats || []).filter((s) => s.status === 'AVAILABLE').length >= SEATS) mark('map', seatmapAvailable);
      } else {
        pollErrors.add(1);
        logError('schedule', m);
      }
    }
    if (now - lastScrape >= 1000) {
      lastScrape = now;
      const c = scrape();
      if (c) {
        // Events published since the watch began are the seats.expired ones (nothing else
        // happens now): published and not yet consumed is the lag in the broker.
        const lag = Math.max(0, (c.published - base.published) - (c.consumed - base.consumed));
        lagSamples.add(lag);
        serverLag.add(c.lag);
        maxLag = Math.max(maxLag, lag, c.lag);
        if (c.swept - base.swept >= HOLDS_MADE) mark('swept', swept);
        if (c.published - base.published >= HOLDS_MADE) mark('relayed', relayed);
        if (c.consumed - base.consumed >= HOLDS_MADE) mark('consumed', consumed);
        if (c.released - base.released >= SEATS_HELD) mark('released', released);
      } else {
        pollErrors.add(1);
      }
    }
    if (seen.api !== undefined && seen.map !== undefined && seen.released !== undefined &&
        seen.consumed !== undefined) break;
    sleep(0.25);
  }
  peakLag.add(maxLag);
  for (const [name, trend] of [['api', apiAvailable], ['map', seatmapAvailable], ['released', released]]) {
    if (seen[name] === undefined) {
      notBack.add(1, { view: name });
      trend.add(WAIT_SECONDS);
      console.warn(`not every seat back after ${WAIT_SECONDS}s in the ${name} view`);
    }
  }
  console.log(`EXPIRY ${JSON.stringify(seen)} peak_lag=${maxLag}`);
}

export default function () {
  if (PHASE === 'prepare') prepare();
  else watch();
}
