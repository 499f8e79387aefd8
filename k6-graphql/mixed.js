// Scenario 5 of the load-test plan (docs/load-test-plan.md, "Sustained load"): RATE GraphQL
// requests per second for DURATION over every endpoint, as fans on the full journey through the
// waiting queue (queue -> browse -> hold -> pay -> me; lib/journey.js has the steps, what counts
// as an error, and how SOLD_OUT and BUSY are handled).
//
// Run it through `scripts/load mixed [--rate R] [--duration S]` (defaults 1000 req/s, 10 min),
// which seeds concerts, seats, fans and points for the whole run, starts the server with the
// product's queue defaults (adaptive admission under QUEUE_ADMIT_PER_SECOND 50/s per concert, at
// most QUEUE_ACTIVE_CAP 500 ACTIVE: what reaches the booking path is metered as in production)
// and writes docs/results/mixed.{md,json}. By hand, against such a database:
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e RATE=50 -e DURATION=30 -e CONCERTS=1 k6-graphql/mixed.js
//
// Load model: open, k6 `constant-arrival-rate` of journeys. A journey sends JOURNEY_REQUESTS (8)
// requests when nothing goes wrong, so RATE requests/s are RATE / 8 journeys/s (JOURNEY_RATE, per
// minute for precision); every request counts, and the report compares the requests actually sent
// per second with RATE. A fan arriving while the server is slow does not wait for another fan:
// k6 starts more VUs (up to MAX_VUS), and counts an arrival it had no VU for in
// dropped_iterations. Fans poll the queue after each answer's pollAfterSeconds (POLL=hint).
//
// Env: RATE (1000), DURATION (600 s), JOURNEY_RATE (journeys per minute; default RATE x 60 / 8),
//      PRE_VUS (journeys/s x 3), MAX_VUS (2000), and lib/journey.js's USERS, USER_ID_BASE,
//      CONCERTS, POLL, POLL_SECONDS (1), MAX_WAIT_SECONDS, MAX_SEATS_PER_HOLD (2: a journey holds 1
//      to this many; the runner's seeding assumes at most 2), BUSY_RETRIES, BUSY_FALLBACK_MS,
//      RUN_ID, ERROR_LOG_PER_VU.
//
// Thresholds (plan, scenario 5 and success criteria; BUSY answers are retried and counted apart):
//   journey_real_failed rate < 0.1 %     (expected business answers excluded: SEAT_UNAVAILABLE,
//                                        SOLD_OUT)
//   journey_active_ms p(95) < 5 s        the journey once ACTIVE: ACTIVE seen -> me answered
//   journey_answer_ms p(95) < 500 ms, p(99) < 1,000 ms   every request not answered BUSY
// Reported, not judged: journey_ms (enterQueue sent -> me answered, the queue wait included),
// http_req_duration (every request, BUSY answers included), journey_busy / journey_busy_ms.
// The report adds: requests sent per second >= 95 % of RATE, journeys completed per minute against
// the offered rate and the admission ceiling, server RSS drift, SQL consistency, verify.
import exec from 'k6/execution';
import { errorBreakdownThresholds } from './lib/graphql.js';
import { JOURNEY_OPS, JOURNEY_REQUESTS, journeyInfoThresholds, runJourney } from './lib/journey.js';
import { TREND_STATS, envInt, latencyMs, parseDuration, windowTag, windowThresholds } from './lib/config.js';

const RATE = envInt('RATE', 1000);
const DURATION_S = Math.round(parseDuration(__ENV.DURATION || '600'));
const JOURNEYS_PER_MIN = envInt('JOURNEY_RATE', Math.max(1, Math.round((RATE * 60) / JOURNEY_REQUESTS)));
const PRE_VUS = envInt('PRE_VUS', Math.max(10, Math.ceil((JOURNEYS_PER_MIN / 60) * 3)));
const MAX_VUS = Math.max(PRE_VUS, envInt('MAX_VUS', 2000));
const WINDOW_SECONDS = 10;

export const options = {
  scenarios: {
    journeys: {
      executor: 'constant-arrival-rate',
      rate: JOURNEYS_PER_MIN,
      timeUnit: '1m',
      duration: `${DURATION_S}s`,
      preAllocatedVUs: PRE_VUS,
      maxVUs: MAX_VUS,
      gracefulStop: '30s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: Object.assign(
    {},
    journeyInfoThresholds(),
    errorBreakdownThresholds(JOURNEY_OPS),
    windowThresholds(Math.ceil(DURATION_S / WINDOW_SECONDS) + 4, 'journey_real_failed', WINDOW_SECONDS),
    {
      journey_real_failed: ['rate<0.001'],
      journey_active_ms: [`p(95)<${latencyMs(5000)}`],
      journey_answer_ms: [`p(95)<${latencyMs(500)}`, `p(99)<${latencyMs(1000)}`],
      http_req_duration: ['max>=0'],
    },
  ),
};

export function setup() {
  return { t0: Date.now() };
}

export default function (data) {
  runJourney(exec.scenario.iterationInTest, () => ({ window: windowTag(Date.now() - data.t0, WINDOW_SECONDS) }));
}
