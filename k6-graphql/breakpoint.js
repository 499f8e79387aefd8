// Breakpoint test (docs/load-test-plan.md, "Test types": raise the load step by step until
// something breaks; report where): fans on the full journey (lib/journey.js: queue, browse, hold,
// pay, me — the sustained-load mix) arrive at START_RATE requests/s, STEP_RATE more every
// STEP_SECONDS, up to MAX_RATE, until a threshold of the current step fails; k6 then stops the
// test (abortOnFail).
//
// Run it through `scripts/load breakpoint [--rate START] [--step R] [--max R] [--duration STEP_S]`
// (defaults 50, 50, 1500 req/s, 30 s), which seeds data for the whole ramp and writes
// docs/results/breakpoint.{md,json} with the rate where it broke. By hand:
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e START_RATE=20 -e STEP_RATE=20 -e MAX_RATE=200 \
//     -e STEP_SECONDS=20 k6-graphql/breakpoint.js
//
// Load model: k6 `ramping-arrival-rate` of journeys (rate / 8 per second, see mixed.js): each step
// jumps to its rate in 1 s and holds it. Requests are tagged `step` (s00, s01, ...) by when they
// were sent, so each step is judged on its own requests, not diluted by the calmer steps before;
// breakpoint_target_rps (a Gauge) is the request rate offered when the last iteration started,
// i.e. where the run was when k6 aborted.
//
// Thresholds, per step, with abortOnFail (evaluated every few seconds; not before 10 s into the
// test): http_req_duration{step} p(95) < 500 ms (plan: response time P95) and
// journey_real_failed{step} < 1 % (error rate; SEAT_UNAVAILABLE and SOLD_OUT are answers and BUSY
// is retried, see lib/journey.js). The report: the first step that failed is where it broke; the
// step before is the last sustained rate (its requests sent per second is the measured maximum
// throughput, against the plan's "> 500 TPS").
//
// Env: START_RATE (50), STEP_RATE (50), MAX_RATE (1500), STEP_SECONDS (30), PRE_VUS, MAX_VUS (3000),
//      and lib/journey.js's settings.
import exec from 'k6/execution';
import { Gauge } from 'k6/metrics';
import { errorBreakdownThresholds } from './lib/graphql.js';
import { JOURNEY_OPS, JOURNEY_REQUESTS, journeyInfoThresholds, runJourney } from './lib/journey.js';
import { TREND_STATS, envInt, info, latencyMs } from './lib/config.js';

const START = envInt('START_RATE', 50);
const STEP = envInt('STEP_RATE', 50);
const MAX = envInt('MAX_RATE', 1500);
const STEP_S = envInt('STEP_SECONDS', 30);
const RATES = [];
for (let r = START; r < MAX + STEP; r += STEP) RATES.push(Math.min(r, MAX));
const perMin = (reqPerS) => Math.max(1, Math.round((reqPerS * 60) / JOURNEY_REQUESTS));
const PRE_VUS = envInt('PRE_VUS', Math.max(10, Math.ceil((perMin(START) / 60) * 4)));
const MAX_VUS = Math.max(PRE_VUS, envInt('MAX_VUS', 3000));

const targetRps = new Gauge('breakpoint_target_rps');
const stepTag = (i) => `s${String(i).padStart(2, '0')}`;
const stepAt = (ms) => Math.min(RATES.length - 1, Math.floor(ms / 1000 / STEP_S));

const stepThresholds = {};
RATES.forEach((_, i) => {
  const tag = stepTag(i);
  stepThresholds[`http_req_duration{step:${tag}}`] = [
    { threshold: `p(95)<${latencyMs(500)}`, abortOnFail: true, delayAbortEval: '10s' },
  ];
  stepThresholds[`journey_real_failed{step:${tag}}`] = [
    { threshold: 'rate<0.01', abortOnFail: true, delayAbortEval: '10s' },
  ];
  Object.assign(stepThresholds, info('counter', [`http_reqs{step:${tag}}`, `journey_outcomes{step:${tag}}`]),
    info('trend', [`journey_ms{step:${tag}}`]));
});

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-arrival-rate',
      startRate: perMin(START),
      timeUnit: '1m',
      preAllocatedVUs: PRE_VUS,
      maxVUs: MAX_VUS,
      stages: RATES.flatMap((r) => [
        { target: perMin(r), duration: '1s' },
        { target: perMin(r), duration: `${STEP_S - 1}s` },
      ]),
      gracefulStop: '20s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: Object.assign(
    {},
    journeyInfoThresholds(),
    errorBreakdownThresholds(JOURNEY_OPS),
    info('gauge', ['breakpoint_target_rps']),
    stepThresholds,
  ),
};

export function setup() {
  return { t0: Date.now() };
}

export default function (data) {
  const step = stepAt(Date.now() - data.t0);
  targetRps.add(RATES[step]);
  runJourney(exec.scenario.iterationInTest, () => ({ step: stepTag(stepAt(Date.now() - data.t0)) }));
}
