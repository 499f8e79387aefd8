// Drill load (docs/incident-response.md, docs/drills/): fans on the full journey (lib/journey.js,
// through the waiting queue) at a moderate RATE requests/s for DURATION seconds, spread over the
// instances in BASE_URLS, while `scripts/drill <name>` injects one fault at a known moment and
// restores it. The drill's report says what fans saw second by second, so every answer is written
// to the console output as one line:
//
//   answer <Unix ms when sent> <instance index> <op> <code> <latency ms>
//
// where <code> is OK, the first error's extensions.code (BUSY included: the journey retries it
// after retryAfterMs), NETWORK when no answer came, or HTTP_<status>.
//
// Run it through `scripts/drill <name>`, which seeds the data, starts the instances, injects the
// fault and writes docs/drills/<name>.{md,json}. By hand (no fault):
//   k6 run -e BASE_URLS=http://127.0.0.1:8080 -e RATE=40 -e DURATION=30 k6-graphql/drill.js
//
// Load model: k6 `constant-arrival-rate` of journeys (RATE / 8 per second, lib/journey.js's
// JOURNEY_REQUESTS), open: arrivals do not wait for the server, so an outage does not slow the
// fans down, as it would not in a real on-sale.
//
// Env: RATE (120 req/s), DURATION (150 s), PRE_VUS, MAX_VUS (1000), and lib/journey.js's
// settings (UNPAID_SHARE: a share of journeys leave their hold to expire).
import exec from 'k6/execution';
import { errorBreakdownThresholds, errorCode } from './lib/graphql.js';
import { JOURNEY_OPS, JOURNEY_REQUESTS, journeyInfoThresholds, runJourney } from './lib/journey.js';
import { BASE_URL, BASE_URLS, TREND_STATS, envInt } from './lib/config.js';

const RATE = envInt('RATE', 120);
const DURATION_S = envInt('DURATION', 150);
const JOURNEYS_PER_MIN = Math.max(1, Math.round((RATE * 60) / JOURNEY_REQUESTS));
const PRE_VUS = envInt('PRE_VUS', Math.max(10, Math.ceil((JOURNEYS_PER_MIN / 60) * 4)));
const MAX_VUS = Math.max(PRE_VUS, envInt('MAX_VUS', 1000));
const INSTANCE = BASE_URLS.indexOf(BASE_URL);

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
  // Nothing is judged here: the drill's runner judges from the answers and the data.
  thresholds: Object.assign({}, journeyInfoThresholds(), errorBreakdownThresholds(JOURNEY_OPS),
    { journey_real_failed: ['rate>=0'], http_req_duration: ['max>=0'] }),
};

function codeOf(result) {
  return result.errors ? errorCode(result) || 'NO_CODE' : 'OK';
}

export default function () {
  runJourney(exec.scenario.iterationInTest, () => ({}), (op, result) => {
    const sent = Date.now() - result.res.timings.duration;
    console.log(`answer ${Math.round(sent)} ${INSTANCE} ${op} ${codeOf(result)} ${Math.round(result.res.timings.duration)}`);
  });
}
